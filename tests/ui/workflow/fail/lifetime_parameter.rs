use replayflow::{Context, workflow};

#[workflow]
async fn process<'a>(ctx: Context, name: std::borrow::Cow<'a, str>) -> Result<String, String> {
    let _ = ctx;
    Ok(name.into_owned())
}

fn main() {}
