//! The Lua scripts, each built once. `lib.lua` (helpers and the key catalogue) is prepended to every script, so they
//! share one definition of elements, bells and failure records. `workflow.lua` (the workflow barrier lib.lua's
//! `settle` calls) is prepended only to the scripts that settle a task (`settling!`): defining its functions costs
//! every call of a script about 0.45 us of Redis CPU, which the hot scripts (enqueue, claim, promote) do not pay.

use std::sync::OnceLock;

use redis::Script;

/// The text of a script: lib.lua, the helper files, then the script's own file.
macro_rules! source {
    ($($file:literal),+) => {
        [include_str!("lua/lib.lua"), $(include_str!($file)),+].join("\n")
    };
}

/// A script that never settles a task: lib.lua, then (optionally) a helper file, then the script.
macro_rules! plain {
    ($fn_name:ident, $($file:literal),+) => {
        pub fn $fn_name() -> &'static Script {
            static CELL: OnceLock<Script> = OnceLock::new();
            CELL.get_or_init(|| Script::new(&source!($($file),+)))
        }
    };
}

/// A script that settles tasks (lib.lua `settle`, `give_back`): lib.lua, workflow.lua, then the script.
macro_rules! settling {
    ($fn_name:ident, $file:literal) => {
        plain!($fn_name, "lua/workflow.lua", $file);
    };
}

plain!(enqueue, "lua/enqueue.lua");
plain!(enqueue_eta, "lua/enqueue_eta.lua");
plain!(claim, "lua/claim.lua");
plain!(claim_limited, "lua/conc.lua", "lua/claim_limited.lua");
plain!(conc_sweep, "lua/conc.lua", "lua/conc_sweep.lua");
settling!(finish, "lua/finish.lua");
settling!(start, "lua/start.lua");
settling!(requeue, "lua/requeue.lua");
settling!(reap, "lua/reap.lua");
plain!(promote, "lua/promote.lua");
plain!(heartbeat, "lua/heartbeat.lua");
plain!(stats, "lua/stats.lua");
plain!(retire, "lua/retire.lua");
plain!(enqueue_unique, "lua/enqueue_unique.lua");
settling!(cancel, "lua/cancel.lua");
plain!(fire, "lua/fire.lua");
plain!(requeue_failed, "lua/requeue_failed.lua");
plain!(drop_failed, "lua/drop_failed.lua");
plain!(release_parked, "lua/release_parked.lua");
settling!(purge, "lua/purge.lua");
plain!(broadcast, "lua/broadcast.lua");
settling!(workflow_start, "lua/workflow_start.lua");
settling!(workflow_cancel, "lua/workflow_cancel.lua");
plain!(progress, "lua/progress.lua");
settling!(enqueue_debounce, "lua/enqueue_debounce.lua");
plain!(pause, "lua/pause.lua");

#[cfg(test)]
mod tests {
    /// Every script without workflow.lua: none of them may settle a task (a workflow step would then end without
    /// its workflow hearing of it: `workflow_settled` would be nil).
    const PLAIN: &[(&str, &str)] = &[
        ("enqueue", include_str!("lua/enqueue.lua")),
        ("enqueue_eta", include_str!("lua/enqueue_eta.lua")),
        ("claim", include_str!("lua/claim.lua")),
        ("claim_limited", include_str!("lua/claim_limited.lua")),
        ("conc", include_str!("lua/conc.lua")),
        ("conc_sweep", include_str!("lua/conc_sweep.lua")),
        ("promote", include_str!("lua/promote.lua")),
        ("heartbeat", include_str!("lua/heartbeat.lua")),
        ("stats", include_str!("lua/stats.lua")),
        ("retire", include_str!("lua/retire.lua")),
        ("enqueue_unique", include_str!("lua/enqueue_unique.lua")),
        ("fire", include_str!("lua/fire.lua")),
        ("requeue_failed", include_str!("lua/requeue_failed.lua")),
        ("drop_failed", include_str!("lua/drop_failed.lua")),
        ("release_parked", include_str!("lua/release_parked.lua")),
        ("broadcast", include_str!("lua/broadcast.lua")),
        ("progress", include_str!("lua/progress.lua")),
        ("pause", include_str!("lua/pause.lua")),
    ];

    #[test]
    fn plain_scripts_settle_nothing() {
        for (name, text) in PLAIN {
            for call in ["settle(", "settlement(", "settlements(", "give_back(", "workflow_"] {
                assert!(!text.contains(call), "{name}.lua calls {call}: build it with settling!");
            }
        }
    }

    #[test]
    fn settling_scripts_carry_the_workflow_engine() {
        let finish = super::finish().get_hash().to_owned();
        let text = [
            include_str!("lua/lib.lua"),
            include_str!("lua/workflow.lua"),
            include_str!("lua/finish.lua"),
        ]
        .join("\n");
        assert_eq!(finish, redis::Script::new(&text).get_hash());
    }
}
