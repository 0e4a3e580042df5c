//! A type declared renamed, under two former names, and an alias of a
//! generic type.

#[derive(serde::Serialize, serde::Deserialize)]
#[replayflow::renamed_from("app::OldQuote", "app::orders::Quote")]
struct PriceQuote {
    price: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Page<T> {
    items: Vec<T>,
}

#[replayflow::renamed_from("app::QuotePage")]
type Quotes = Page<PriceQuote>;

fn main() {
    let _ = PriceQuote { price: 1 };
    let _: Quotes = Page { items: Vec::new() };
}
