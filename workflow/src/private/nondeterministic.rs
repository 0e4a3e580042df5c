//! The determinism lint's messages. `#[workflow]` refers to one of these constants,
//! spanned on the call, for each call in a workflow body that replay cannot repeat, so
//! rustc prints the constant's note as a `deprecated` warning at the user's code. The
//! constants are units and the references sit in a `const _` item: nothing runs.
//!
//! Each note names the call, says what replay would get wrong and names the durable
//! alternative. The name of the call in a note is the one the lint matched, so each
//! spelling the lint recognizes has its own constant.

// A note is one line of rustc's output; breaking it would put the break in the message.
#![allow(clippy::doc_markdown)]

macro_rules! lint_notes {
    ($($(#[$doc:meta])* $name:ident => $note:literal,)*) => {
        $(
            $(#[$doc])*
            #[deprecated(note = $note)]
            pub const $name: () = ();
        )*
    };
}

lint_notes! {
    /// `SystemTime::now` in a workflow body.
    SYSTEM_TIME_NOW => "`SystemTime::now` in a workflow body returns a different time on replay: use `ctx.now().await` (journaled), or call it in a `#[step]`",
    /// `Instant::now` in a workflow body.
    INSTANT_NOW => "`Instant::now` in a workflow body returns a different instant on replay: use `ctx.now().await` (journaled), or call it in a `#[step]`",
    /// chrono's `Utc::now` in a workflow body.
    UTC_NOW => "`Utc::now` in a workflow body returns a different time on replay: use `ctx.now().await` (journaled; `DateTime::<Utc>::from` converts it), or call it in a `#[step]`",
    /// chrono's `Local::now` in a workflow body.
    LOCAL_NOW => "`Local::now` in a workflow body returns a different time on replay: use `ctx.now().await` (journaled; `DateTime::<Local>::from` converts it), or call it in a `#[step]`",
    /// `rand::thread_rng` in a workflow body.
    THREAD_RNG => "`thread_rng` in a workflow body draws different numbers on replay: use `ctx.random_u64().await` or `ctx.uuid().await` (journaled), or draw them in a `#[step]`",
    /// `rand::rng` in a workflow body.
    RAND_RNG => "`rand::rng` in a workflow body draws different numbers on replay: use `ctx.random_u64().await` or `ctx.uuid().await` (journaled), or draw them in a `#[step]`",
    /// `rand::random` in a workflow body.
    RAND_RANDOM => "`rand::random` in a workflow body returns a different value on replay: use `ctx.random_u64().await` or `ctx.uuid().await` (journaled), or draw it in a `#[step]`",
    /// `Uuid::new_v4` in a workflow body.
    UUID_NEW_V4 => "`Uuid::new_v4` in a workflow body makes a different UUID on replay: use `ctx.uuid().await` (journaled), or make it in a `#[step]`",
    /// `std::thread::spawn` in a workflow body.
    THREAD_SPAWN => "`thread::spawn` in a workflow body runs its closure outside the workflow, where steps are not journaled, and every replay spawns it again: move the work into a `#[step]`",
    /// `tokio::spawn` in a workflow body.
    TOKIO_SPAWN => "`tokio::spawn` in a workflow body runs its task outside the workflow, where steps are not journaled, and every replay spawns it again: await concurrent work in the body (`ctx.branch` gives each part its own journal keys), or move it into a `#[step]`",
    /// `tokio::task::spawn` in a workflow body.
    TASK_SPAWN => "`task::spawn` in a workflow body runs its task outside the workflow, where steps are not journaled, and every replay spawns it again: await concurrent work in the body (`ctx.branch` gives each part its own journal keys), or move it into a `#[step]`",
    /// `spawn_blocking` in a workflow body.
    SPAWN_BLOCKING => "`spawn_blocking` in a workflow body runs outside the journal, so every replay runs it again and may get another result: call it in a `#[step]`",
    /// `std::env::var` in a workflow body.
    ENV_VAR => "`env::var` in a workflow body may read another value on replay (another process, another host): read it in a `#[step]`, or pass it in as an argument of the workflow",
    /// `std::env::var_os` in a workflow body.
    ENV_VAR_OS => "`env::var_os` in a workflow body may read another value on replay (another process, another host): read it in a `#[step]`, or pass it in as an argument of the workflow",
    /// `std::env::vars` in a workflow body.
    ENV_VARS => "`env::vars` in a workflow body may read other values on replay (another process, another host): read them in a `#[step]`, or pass them in as an argument of the workflow",
    /// `std::env::vars_os` in a workflow body.
    ENV_VARS_OS => "`env::vars_os` in a workflow body may read other values on replay (another process, another host): read them in a `#[step]`, or pass them in as an argument of the workflow",
    /// Iteration of a `HashMap` in a workflow body.
    HASH_MAP_ITER => "iterating a `HashMap` in a workflow body visits its entries in another order on replay (every map seeds its hasher at random): use a `BTreeMap`, or collect and sort the entries under `#[allow_nondeterministic]`",
    /// Iteration of a `HashSet` in a workflow body.
    HASH_SET_ITER => "iterating a `HashSet` in a workflow body visits its items in another order on replay (every set seeds its hasher at random): use a `BTreeSet`, or collect and sort the items under `#[allow_nondeterministic]`",
    /// `select!` in a workflow body.
    SELECT => "`select!` in a workflow body takes whichever branch is ready first, which can be another one on replay: race the work inside a `#[step]`, or await every branch (`join!` of `ctx.branch` futures)",
}
