use replayflow::{Context, workflow};

#[derive(Debug)]
enum OrderError {
    Empty,
}

#[workflow]
async fn process(ctx: Context, id: u64) -> Result<u64, OrderError> {
    let _ = ctx;
    if id == 0 {
        return Err(OrderError::Empty);
    }
    Ok(id)
}

fn main() {}
