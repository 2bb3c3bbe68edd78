//! The Lua scripts, each built once. `lib.lua` (helpers and the key catalogue) and `workflow.lua` (the workflow
//! barrier lib.lua's `settle` calls) are prepended to every script, so they share one definition of elements,
//! bells, failure records and workflow steps.

use std::sync::OnceLock;

use redis::Script;

macro_rules! script {
    ($fn_name:ident, $file:literal) => {
        pub fn $fn_name() -> &'static Script {
            static CELL: OnceLock<Script> = OnceLock::new();
            CELL.get_or_init(|| {
                Script::new(&format!(
                    "{}\n{}\n{}",
                    include_str!("lua/lib.lua"),
                    include_str!("lua/workflow.lua"),
                    include_str!($file)
                ))
            })
        }
    };
}

/// A script with one more helper file between the shared ones and its own (per-key concurrency: lua/conc.lua, loaded
/// only by the scripts of apps that use it).
macro_rules! script_with {
    ($fn_name:ident, $helpers:literal, $file:literal) => {
        pub fn $fn_name() -> &'static Script {
            static CELL: OnceLock<Script> = OnceLock::new();
            CELL.get_or_init(|| {
                Script::new(&format!(
                    "{}\n{}\n{}\n{}",
                    include_str!("lua/lib.lua"),
                    include_str!("lua/workflow.lua"),
                    include_str!($helpers),
                    include_str!($file)
                ))
            })
        }
    };
}

script!(enqueue, "lua/enqueue.lua");
script!(enqueue_eta, "lua/enqueue_eta.lua");
script!(claim, "lua/claim.lua");
script_with!(claim_limited, "lua/conc.lua", "lua/claim_limited.lua");
script_with!(conc_sweep, "lua/conc.lua", "lua/conc_sweep.lua");
script!(finish, "lua/finish.lua");
script!(start, "lua/start.lua");
script!(requeue, "lua/requeue.lua");
script!(reap, "lua/reap.lua");
script!(promote, "lua/promote.lua");
script!(heartbeat, "lua/heartbeat.lua");
script!(stats, "lua/stats.lua");
script!(retire, "lua/retire.lua");
script!(enqueue_unique, "lua/enqueue_unique.lua");
script!(cancel, "lua/cancel.lua");
script!(fire, "lua/fire.lua");
script!(requeue_failed, "lua/requeue_failed.lua");
script!(drop_failed, "lua/drop_failed.lua");
script!(release_parked, "lua/release_parked.lua");
script!(purge, "lua/purge.lua");
script!(broadcast, "lua/broadcast.lua");
script!(workflow_start, "lua/workflow_start.lua");
script!(workflow_cancel, "lua/workflow_cancel.lua");
script!(progress, "lua/progress.lua");
script!(enqueue_debounce, "lua/enqueue_debounce.lua");
script!(pause, "lua/pause.lua");
