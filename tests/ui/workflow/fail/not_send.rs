use std::rc::Rc;
use replayflow::{Context, step, workflow};

#[step]
async fn lookup(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[workflow]
async fn process(ctx: Context, id: u64) -> Result<u64, String> {
    let _ = ctx;
    let cache = Rc::new(id);
    let found = lookup(*cache).await?;
    Ok(found + *cache)
}

fn main() {}
