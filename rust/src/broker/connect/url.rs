//! The connection settings every connection of wakaq starts from (the leaf of `connect`: the single server, the
//! cluster nodes, the sentinels and the TLS setup all build on it, none on each other's internals).

use std::time::Duration;

use redis::{ConnectionInfo, IntoConnectionInfo, RedisResult};

/// The connection settings of `url`, closing with SO_LINGER 0 (an RST that discards unsent and unacknowledged
/// data).
///
/// WARN: without it, a call given up after a timeout during a network partition stays in the kernel of the closed
/// socket and is retransmitted, and so executed by Redis, when the network returns: possibly after the caller has
/// settled it (a child's claim whose seqs it already handed back would then leave tasks in flight under seqs
/// nobody settles again). `tests/faults/test_hosts.py` shows it with a push.
pub fn connection_info(url: impl IntoConnectionInfo) -> RedisResult<ConnectionInfo> {
    let info = url.into_connection_info()?;
    let tcp = info.tcp_settings().clone().set_linger_time(Duration::ZERO);
    Ok(info.set_tcp_settings(tcp))
}
