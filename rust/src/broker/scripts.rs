//! The Lua scripts, each built once. `lib.lua` (helpers and the key catalogue) is the library of every script, so
//! they share one definition of elements, bells and failure records; `workflow.lua` (the workflow barrier lib.lua's
//! `settle` calls) is added for the scripts that settle a task (`settling!`), `conc.lua` for those that need it.
//! A script carries only the library units it uses (shake.rs): defining a function costs every call of a script
//! Redis CPU whether it is called or not.

use std::sync::OnceLock;

use redis::Script;

/// The text of a script: what it uses of lib.lua and the helper files, then the script's own file (the last).
macro_rules! source {
    ($($file:literal),+) => {{
        let files = [include_str!("lua/lib.lua"), $(include_str!($file)),+];
        let (script, libraries) = files.split_last().expect("a script file");
        super::shake::assemble(libraries, script)
    }};
}

/// Each script: `name => [helper files..., script file]` gives `name()`, the script built once; `text(name)`, the
/// same text by name; `NAMES`, every name. Settling scripts (lib.lua `settle`, `give_back`) list workflow.lua.
macro_rules! scripts {
    ($($fn_name:ident => [$($file:literal),+];)+) => {
        $(
            pub fn $fn_name() -> &'static Script {
                static CELL: OnceLock<Script> = OnceLock::new();
                CELL.get_or_init(|| Script::new(&source!($($file),+)))
            }
        )+

        /// The text of a script as Redis gets it, by name (`"finish"`): tests and tools compare SHAs with it.
        pub fn text(name: &str) -> Option<String> {
            match name {
                $(stringify!($fn_name) => Some(source!($($file),+)),)+
                _ => None,
            }
        }

        /// Every script's name.
        pub const NAMES: &[&str] = &[$(stringify!($fn_name)),+];
    };
}

scripts! {
    enqueue => ["lua/enqueue.lua"];
    enqueue_eta => ["lua/enqueue_eta.lua"];
    claim => ["lua/claim.lua"];
    claim_limited => ["lua/conc.lua", "lua/claim_limited.lua"];
    conc_sweep => ["lua/conc.lua", "lua/conc_sweep.lua"];
    finish => ["lua/workflow.lua", "lua/finish.lua"];
    start => ["lua/workflow.lua", "lua/start.lua"];
    requeue => ["lua/workflow.lua", "lua/requeue.lua"];
    reap => ["lua/workflow.lua", "lua/reap.lua"];
    promote => ["lua/promote.lua"];
    heartbeat => ["lua/heartbeat.lua"];
    stats => ["lua/stats.lua"];
    retire => ["lua/retire.lua"];
    enqueue_unique => ["lua/enqueue_unique.lua"];
    cancel => ["lua/workflow.lua", "lua/cancel.lua"];
    fire => ["lua/fire.lua"];
    requeue_failed => ["lua/requeue_failed.lua"];
    drop_failed => ["lua/drop_failed.lua"];
    release_parked => ["lua/release_parked.lua"];
    purge => ["lua/workflow.lua", "lua/purge.lua"];
    broadcast => ["lua/broadcast.lua"];
    workflow_start => ["lua/workflow.lua", "lua/workflow_start.lua"];
    workflow_cancel => ["lua/workflow.lua", "lua/workflow_cancel.lua"];
    progress => ["lua/progress.lua"];
    enqueue_debounce => ["lua/workflow.lua", "lua/enqueue_debounce.lua"];
    pause => ["lua/pause.lua"];
}

#[cfg(test)]
mod tests {
    use super::{text, NAMES};

    /// A script that settles a task must carry the workflow engine: without workflow.lua, lib.lua's `settle` would
    /// call a `workflow_settled` that is nil, and a workflow step would end without its workflow hearing of it.
    #[test]
    fn settling_scripts_carry_the_workflow_engine() {
        let mut settling = Vec::new();
        for name in NAMES {
            let source = text(name).unwrap_or_default();
            if source.contains("local function settle(") {
                assert!(
                    source.contains("workflow_settled = function"),
                    "{name}: list lua/workflow.lua"
                );
                settling.push(*name);
            }
        }
        assert!(
            settling.contains(&"finish") && settling.contains(&"reap"),
            "{settling:?}"
        );
    }

    /// The hot scripts carry none of the helpers they do not call.
    #[test]
    fn hot_scripts_are_lean() {
        for name in ["enqueue", "claim", "promote"] {
            let source = text(name).unwrap_or_default();
            for helper in ["local function settle(", "local function record(", "workflow_settled"] {
                assert!(!source.contains(helper), "{name} carries {helper}");
            }
        }
        assert_eq!(
            text("finish")
                .map(|t| redis::Script::new(&t).get_hash().to_owned())
                .as_deref(),
            Some(super::finish().get_hash())
        );
        assert_eq!(text("nope"), None);
    }
}
