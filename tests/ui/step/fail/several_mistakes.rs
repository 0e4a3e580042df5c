// Independent mistakes are all reported in one build.
use replayflow::step;

#[step(max_attempts = 0, timeout = "soon")]
fn charge<T>((a, b): (u64, u64), note: impl ToString) -> u64 {
    let _ = note.to_string();
    a + b
}

fn main() {}
