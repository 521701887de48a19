//! The Lua scripts, loaded once. Each file's header lists its KEYS, ARGV and return value.

use std::sync::LazyLock;

use redis::Script;

/// Scripts for every transition. `Script` sends EVALSHA and falls back to EVAL
/// after a Redis restart emptied the script cache.
pub(crate) struct Scripts {
    pub enqueue: Script,
    pub claim: Script,
    pub heartbeat: Script,
    pub finish: Script,
    pub complete: Script,
    pub cancel: Script,
    pub reap: Script,
    pub requeue: Script,
    pub release: Script,
    pub due_files: Script,
    pub discard_files: Script,
}

pub(crate) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: Script::new(include_str!("lua/enqueue.lua")),
    claim: Script::new(include_str!("lua/claim.lua")),
    heartbeat: Script::new(include_str!("lua/heartbeat.lua")),
    finish: Script::new(include_str!("lua/finish.lua")),
    complete: Script::new(include_str!("lua/complete.lua")),
    cancel: Script::new(include_str!("lua/cancel.lua")),
    reap: Script::new(include_str!("lua/reap.lua")),
    requeue: Script::new(include_str!("lua/requeue.lua")),
    release: Script::new(include_str!("lua/release.lua")),
    due_files: Script::new(include_str!("lua/due_files.lua")),
    discard_files: Script::new(include_str!("lua/discard_files.lua")),
});
