//! Connections to Redis, owned in one place: a single server (`conn`), a Redis Cluster (`cluster`), the master
//! named by sentinels (`sentinel`), TLS for any of them (`tls`), all from the settings of `url`. `conn::Conn` is
//! what the rest of the broker uses; the others are its parts (and the pub/sub socket's).

pub mod cluster;
pub mod conn;
pub mod held;
pub mod sentinel;
pub mod tls;
pub mod url;
