use replayflow::{Context, workflow};

struct Order {
    id: u64,
}

struct Item;

#[workflow]
async fn process(ctx: Context, order: Order, count: u32, items: Vec<Item>) -> Result<u64, String> {
    let _ = (ctx, items);
    Ok(order.id + u64::from(count))
}

fn main() {}
