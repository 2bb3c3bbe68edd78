//! Workflows (chains, groups, callbacks): the tree a producer sends, written as lua/workflow.lua's hash fields, and
//! the two admin-side scripts (start, cancel). Steps end in the workflow inside lib.lua's `settle` (see workflow.lua),
//! so the children's paths gain nothing here.

use redis::{ConnectionLike, RedisResult};

use super::keys::Keys;
use super::scripts;
use crate::codec::read::{Reader, Token};

/// Most nodes in one workflow (every field is sent in one script call).
pub const MAX_NODES: usize = 100_000;
/// Workflow ids the index of recent workflows keeps (keys.rs `workflows_recent`; the dashboard's Workflows page).
pub const RECENT_KEEP: u32 = 1_000;
/// Deepest nesting (workflow.lua's loops that walk up the tree are bounded by 1,000).
pub const MAX_DEPTH: usize = 100;

/// One node of the tree, in pre-order (node 0 is the root; a parent comes before its children).
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A task step: its queue, task name and encoded payload (msgpack, meta included); `immutable`: `.si()`.
    Task {
        queue: String,
        name: String,
        payload: Vec<u8>,
        immutable: bool,
    },
    Chain,
    Group {
        allow_failure: bool,
    },
}

/// The id of step `node` of workflow `id` (its result record's id; cancel finds a workflow's steps by this prefix).
pub fn member_id(id: &str, node: usize) -> String {
    format!("{id}-{node}")
}

/// (end of the head, item count, start and end of the args' items) of a msgpack task payload whose map starts with
/// `name` then `args`, as wakaq's encoder writes it. None for anything else.
pub fn split_args(payload: &[u8]) -> Option<(usize, u32, usize, usize)> {
    let mut r = Reader::new(payload);
    let (Ok(Token::Map(_)), Ok(Token::Str(b"name"))) = (r.token(), r.token()) else {
        return None;
    };
    r.skip(1).ok()?;
    let Ok(Token::Str(b"args")) = r.token() else {
        return None;
    };
    let head = r.pos();
    let Ok(Token::Array(n)) = r.token() else {
        return None;
    };
    let start = r.pos();
    for _ in 0..n {
        r.skip(1).ok()?;
    }
    Some((head, n, start, r.pos()))
}

/// The hash fields of workflow `id` (lua/workflow.lua names them), from `nodes` with their parents (-1: the root).
pub fn fields(keys: &Keys, id: &str, nodes: &[(Node, i64)]) -> Result<Vec<(String, Vec<u8>)>, String> {
    if nodes.is_empty() || nodes.len() > MAX_NODES {
        return Err(format!("a workflow has 1 to {MAX_NODES} nodes, got {}", nodes.len()));
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut depth = vec![0usize; nodes.len()];
    let mut out = Vec::with_capacity(nodes.len() * 12);
    for (i, (node, parent)) in nodes.iter().enumerate() {
        let parent = usize::try_from(*parent).ok();
        match parent {
            None if i == 0 => {}
            Some(p) if p < i && !matches!(nodes[p].0, Node::Task { .. }) => {
                children[p].push(i);
                depth[i] = depth[p] + 1;
                if depth[i] > MAX_DEPTH {
                    return Err(format!("workflows nest at most {MAX_DEPTH} deep"));
                }
                out.push((format!("u{i}"), p.to_string().into_bytes()));
                out.push((format!("o{i}"), children[p].len().to_string().into_bytes()));
            }
            _ => {
                return Err(format!(
                    "node {i}: its parent must be an earlier chain or group (root: -1 first)"
                ))
            }
        }
        node_fields(keys, id, i, node, &mut out)?;
    }
    for (i, list) in children.iter().enumerate() {
        if matches!(nodes[i].0, Node::Task { .. }) {
            continue;
        }
        if list.is_empty() {
            return Err(format!("node {i}: a chain or group needs at least one member"));
        }
        let text: Vec<String> = list.iter().map(ToString::to_string).collect();
        out.push((format!("c{i}"), text.join(" ").into_bytes()));
    }
    out.push(("u0".to_owned(), Vec::new()));
    out.push(("nodes".to_owned(), nodes.len().to_string().into_bytes()));
    Ok(out)
}

fn node_fields(keys: &Keys, id: &str, i: usize, node: &Node, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), String> {
    let kind = match node {
        Node::Chain => "c",
        Node::Group { allow_failure } => {
            out.push((
                format!("f{i}"),
                if *allow_failure { b"1".to_vec() } else { b"0".to_vec() },
            ));
            "g"
        }
        Node::Task {
            queue,
            name,
            payload,
            immutable,
        } => {
            let (head, n, start, end) =
                split_args(payload).ok_or_else(|| format!("node {i}: not a msgpack task payload"))?;
            let member = member_id(id, i);
            out.extend([
                (format!("q{i}"), keys.queue(queue).into_bytes()),
                (format!("b{i}"), keys.bell(queue).into_bytes()),
                (format!("h{i}"), payload[..head].to_vec()),
                (format!("a{i}"), payload[start..end].to_vec()),
                (format!("n{i}"), n.to_string().into_bytes()),
                (format!("r{i}"), payload[end..].to_vec()),
                (format!("i{i}"), if *immutable { b"1".to_vec() } else { b"0".to_vec() }),
                (format!("x{i}"), keys.result(&member).into_bytes()),
                (format!("m{i}"), member.into_bytes()),
                (format!("w{i}"), name.clone().into_bytes()),
            ]);
            "t"
        }
    };
    out.push((format!("k{i}"), kind.as_bytes().to_vec()));
    Ok(())
}

/// Write workflow `id`, add it to the index of recent workflows and start its root (workflow_start.lua); false when
/// that id exists already.
pub fn start(
    c: &mut dyn ConnectionLike,
    keys: &Keys,
    id: &str,
    ttl_ms: u64,
    fields: &[(String, Vec<u8>)],
) -> RedisResult<bool> {
    let mut inv = scripts::workflow_start().key(keys.workflow(id));
    inv.key(keys.workflows_recent())
        .arg(ttl_ms.max(1))
        .arg(keys.workflow_results(id))
        .arg(keys.workflow_ready(id))
        .arg(id)
        .arg(RECENT_KEEP);
    for (k, v) in fields {
        inv.arg(k).arg(v.as_slice());
    }
    inv.invoke::<i64>(c).map(|n| n == 1)
}

/// Cancel workflow `id` (workflow_cancel.lua): the status it had ('' when there is none); only a running one changes.
pub fn cancel(c: &mut dyn ConnectionLike, keys: &Keys, id: &str, reason: &str) -> RedisResult<String> {
    scripts::workflow_cancel().key(keys.workflow(id)).arg(reason).invoke(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// {"name": "add", "args": [1, [2]], "kwargs": {}, "retry": 0}
    fn payload() -> Vec<u8> {
        let mut p = vec![0x84, 0xa4];
        p.extend(b"name");
        p.extend([0xa3]);
        p.extend(b"add");
        p.push(0xa4);
        p.extend(b"args");
        p.extend([0x92, 0x01, 0x91, 0x02, 0xa6]);
        p.extend(b"kwargs");
        p.extend([0x80, 0xa5]);
        p.extend(b"retry");
        p.push(0x00);
        p
    }

    #[test]
    fn splits_the_args() {
        let p = payload();
        let (head, n, start, end) = split_args(&p).expect("a task payload");
        assert_eq!(&p[head - 4..head], b"args");
        assert_eq!((n, &p[start..end]), (2, &[0x01, 0x91, 0x02][..]));
        assert_eq!(p[head], 0x92);
        assert_eq!(p[end], 0xa6);
        assert_eq!(split_args(b"{\"name\": \"add\"}"), None);
        assert_eq!(split_args(&[0x93, 1, 2, 3]), None);
        // cut anywhere before the args' end (the rest is copied as it is)
        for cut in 0..end {
            assert_eq!(split_args(&p[..cut]), None, "cut at {cut}");
        }
    }

    fn task() -> Node {
        Node::Task {
            queue: "default".into(),
            name: "add".into(),
            payload: payload(),
            immutable: false,
        }
    }

    #[test]
    fn fields_of_a_group_in_a_chain() {
        let keys = Keys::new("wakaq", false);
        let nodes = [
            (Node::Chain, -1),
            (Node::Group { allow_failure: true }, 0),
            (task(), 1),
            (task(), 1),
            (task(), 0),
        ];
        let f = fields(&keys, "w1", &nodes).expect("valid");
        let get = |k: &str| {
            f.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(get("c0").as_deref(), Some("1 4"));
        assert_eq!(get("c1").as_deref(), Some("2 3"));
        assert_eq!(get("o3").as_deref(), Some("2"));
        assert_eq!(get("u4").as_deref(), Some("0"));
        assert_eq!(get("f1").as_deref(), Some("1"));
        assert_eq!(get("x2").as_deref(), Some("wakaq:result:w1-2"));
        assert_eq!(get("q2").as_deref(), Some("wakaq:default"));
        assert_eq!(get("n2").as_deref(), Some("2"));
        assert_eq!(get("k1").as_deref(), Some("g"));
        assert_eq!(get("nodes").as_deref(), Some("5"));
    }

    #[test]
    fn refuses_bad_trees() {
        let keys = Keys::new("wakaq", false);
        let cases: [(Vec<(Node, i64)>, &str); 5] = [
            (vec![], "1 to"),
            (vec![(Node::Chain, -1)], "at least one member"),
            (vec![(task(), -1), (task(), 0)], "earlier chain or group"),
            (vec![(Node::Chain, -1), (task(), 5)], "earlier chain or group"),
            (vec![(task(), 0)], "earlier chain or group"),
        ];
        for (nodes, want) in cases {
            let got = fields(&keys, "w", &nodes).expect_err(want);
            assert!(got.contains(want), "{got} / {want}");
        }
        let mut deep = vec![(Node::Chain, -1)];
        for i in 0..=MAX_DEPTH {
            deep.push((Node::Chain, i64::try_from(i).expect("small")));
        }
        deep.push((task(), i64::try_from(MAX_DEPTH + 1).expect("small")));
        assert!(fields(&keys, "w", &deep)
            .expect_err("too deep")
            .contains("nest at most"));
    }
}
