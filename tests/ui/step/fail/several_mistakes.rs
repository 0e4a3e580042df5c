// Independent mistakes are all reported in one build.
use workflow::step;

#[step(max_attempts = 0, timeout = "soon")]
fn charge<T>(self, (a, b): (u64, u64)) -> u64 {
    a + b
}

fn main() {}
