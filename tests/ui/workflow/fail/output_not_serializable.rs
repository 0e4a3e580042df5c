use replayflow::{Context, workflow};

#[derive(Debug)]
struct Receipt {
    id: u64,
}

#[workflow]
async fn process(ctx: Context, id: u64) -> Result<Receipt, String> {
    let _ = ctx;
    Ok(Receipt { id })
}

fn main() {}
