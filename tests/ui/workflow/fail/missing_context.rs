use replayflow::workflow;

#[workflow]
async fn process(order_id: u64) -> Result<u64, String> {
    Ok(order_id)
}

fn main() {}
