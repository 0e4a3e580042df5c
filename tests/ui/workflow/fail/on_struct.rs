use replayflow::workflow;

#[workflow]
struct Process {
    order_id: u64,
}

fn main() {}
