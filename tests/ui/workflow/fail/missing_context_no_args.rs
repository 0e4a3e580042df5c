use replayflow::workflow;

#[workflow]
async fn process() -> Result<u64, String> {
    Ok(1)
}

fn main() {}
