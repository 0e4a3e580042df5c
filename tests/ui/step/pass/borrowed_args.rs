// Steps may borrow: references clone for free on each attempt, with elided or named
// lifetimes.
use serde::{Deserialize, Serialize};
use replayflow::step;

#[derive(Serialize, Deserialize)]
struct Order {
    id: u32,
    lines: Vec<u64>,
}

#[step]
async fn total(order: &Order, label: &str, discounts: &[u64]) -> Result<String, String> {
    let sum: u64 = order.lines.iter().sum::<u64>() - discounts.iter().sum::<u64>();
    Ok(format!("{label} {}: {sum}", order.id))
}

#[step(max_attempts = 2)]
async fn first_line<'a, 'b>(order: &'a Order, _note: &'b str) -> Result<u64, String>
where
    'b: 'a,
{
    order
        .lines
        .first()
        .copied()
        .ok_or_else(|| "empty order".to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let order = Order {
        id: 7,
        lines: vec![10, 20],
    };
    assert_eq!(total(&order, "order", &[5]).await.unwrap(), "order 7: 25");
    assert_eq!(first_line(&order, "note").await.unwrap(), 10);
}
