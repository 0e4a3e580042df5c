use replayflow::{Context, workflow};

#[workflow]
async fn process(ctx: Context, order_id: u64) {
    let _ = (ctx, order_id);
}

fn main() {}
