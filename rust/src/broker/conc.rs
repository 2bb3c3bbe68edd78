//! Per-key concurrency, the heartbeat's part (lua/conc.lua has the design): walk the registry of keys with permits
//! or waiters a bounded slice per beat, drop permits whose in-flight entry is gone and give their room to the key's
//! waiters (conc_sweep.lua). The claim of a child that settled a holder does the same for its keys at once; this
//! walk is what frees waiters whose holder died (kill -9 of a child or a daemon) or settled elsewhere (a hard
//! timeout failed by the parent, a cancel).

use redis::{ConnectionLike, RedisResult};

use super::keys::{Keys, MEMBER_SEP};
use super::scripts;

/// Registry members read per beat (SSCAN COUNT; the cursor goes on at the next beat).
const SCAN: u32 = 200;
/// Waiters moved per beat at most.
const BUDGET: u32 = 1000;

/// One slice of the walk, from `cursor` (updated: 0 when the walk went round). Members of tasks this daemon does not
/// know are left to the daemons that do; a known task without a limit (the limit was removed) lets all its waiters
/// go. Returns the number of waiters moved.
pub fn sweep(
    c: &mut dyn ConnectionLike,
    keys: &Keys,
    task_names: &[String],
    limits: &[(String, u32)],
    cursor: &mut u64,
) -> RedisResult<u64> {
    let registry = keys.conc_registry();
    let (next, members): (u64, Vec<Vec<u8>>) = redis::cmd("SSCAN")
        .arg(&registry)
        .arg(*cursor)
        .arg("COUNT")
        .arg(SCAN)
        .query(c)?;
    *cursor = next;
    let picked: Vec<(String, String, Option<u32>)> = members
        .iter()
        .filter_map(|m| parse_member(m))
        .filter_map(|(task, key)| {
            let limit = limits.iter().find(|l| l.0 == task).map(|l| l.1);
            (limit.is_some() || task_names.contains(&task)).then_some((task, key, limit))
        })
        .collect();
    if picked.is_empty() {
        return Ok(0);
    }
    let mut inv = scripts::conc_sweep().key(&registry);
    inv.arg(BUDGET).arg(keys.queue("")).arg(keys.bell(""));
    for (task, key, limit) in &picked {
        inv.arg(Keys::conc_member(task, key))
            .arg(limit.map_or_else(String::new, |l| l.to_string()))
            .arg(keys.conc(task, key))
            .arg(keys.conc_wait(task, key));
    }
    inv.invoke(c)
}

/// (task, key) of a registry member "<task>\x1f<key>"; None for anything else.
fn parse_member(member: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(member).ok()?;
    let (task, key) = text.split_once(MEMBER_SEP)?;
    Some((task.to_owned(), key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_round_trip() {
        let m = Keys::conc_member("send", "acme:eu");
        assert_eq!(parse_member(m.as_bytes()), Some(("send".into(), "acme:eu".into())));
        assert_eq!(parse_member(b"no separator"), None);
        assert_eq!(parse_member(&[0xff, 0x1f, b'k']), None);
    }
}
