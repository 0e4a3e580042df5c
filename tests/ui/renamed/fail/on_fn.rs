#[replayflow::renamed_from("app::old_quote")]
fn quote() -> u32 {
    12
}

fn main() {}
