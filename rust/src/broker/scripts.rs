//! The Lua scripts, each built once. `lib.lua` (helpers and the key catalogue) is prepended to every script
//! so they share one definition of elements, bells and failure records.

use std::sync::OnceLock;

use redis::Script;

macro_rules! script {
    ($fn_name:ident, $file:literal) => {
        pub fn $fn_name() -> &'static Script {
            static CELL: OnceLock<Script> = OnceLock::new();
            CELL.get_or_init(|| {
                Script::new(&format!(
                    "{}\n{}",
                    include_str!("lua/lib.lua"),
                    include_str!($file)
                ))
            })
        }
    };
}

script!(enqueue, "lua/enqueue.lua");
script!(enqueue_eta, "lua/enqueue_eta.lua");
script!(claim, "lua/claim.lua");
script!(claim_limited, "lua/claim_limited.lua");
script!(finish, "lua/finish.lua");
script!(requeue, "lua/requeue.lua");
script!(reap, "lua/reap.lua");
script!(promote, "lua/promote.lua");
script!(heartbeat, "lua/heartbeat.lua");
script!(stats, "lua/stats.lua");
script!(retire, "lua/retire.lua");
script!(release_parked, "lua/release_parked.lua");
script!(purge, "lua/purge.lua");

/// Scripts of the opt-in task features, kept with the Python package (`python/wakaq/lua/`) because redis-py runs
/// them too (producers, `wakaq.results`): no `lib.lua` prepended, so both clients share one script (one SHA).
macro_rules! meta_script {
    ($fn_name:ident, $file:literal) => {
        pub fn $fn_name() -> &'static Script {
            static CELL: OnceLock<Script> = OnceLock::new();
            CELL.get_or_init(|| Script::new(include_str!($file)))
        }
    };
}

meta_script!(result_mark, "../../../python/wakaq/lua/result_mark.lua");
meta_script!(unique_release, "../../../python/wakaq/lua/unique_release.lua");
