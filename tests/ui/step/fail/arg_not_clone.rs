use replayflow::step;

struct Card {
    number: String,
}

#[step(max_attempts = 3)]
async fn charge(card: Card, amount: u64) -> Result<u64, String> {
    let _ = card.number;
    Ok(amount)
}

fn main() {}
