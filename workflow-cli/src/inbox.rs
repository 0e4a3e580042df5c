//! `workflow send ID TOPIC JSON` and `workflow events ID`.

use std::process::ExitCode;

use replayflow::{Delivery, Runtime, SendOptions};

use crate::args::{EventsArgs, SendArgs};
use crate::format::{self, Table, escape};
use crate::show::payload_text;
use crate::{Failure, emit};

pub(crate) async fn send(rt: &Runtime, args: &SendArgs) -> Result<ExitCode, Failure> {
    let message: serde_json::Value = serde_json::from_str(&args.message).map_err(|e| {
        Failure(format!(
            "the message is not JSON ({e}); quote a string as JSON: '\"text\"'"
        ))
    })?;
    let options = match &args.idempotency_key {
        Some(key) => SendOptions::idempotency_key(key.as_str()),
        None => SendOptions::default(),
    };
    let delivery = rt
        .send_json(args.id.as_str(), &args.topic, &message, options)
        .await?;
    let (id, topic) = (escape(&args.id), escape(&args.topic));
    emit(&match delivery {
        Delivery::Duplicate => format!(
            "a message with this idempotency key was already sent to `{id}`; nothing was sent\n"
        ),
        _ => format!("sent to `{id}` on topic `{topic}`\n"),
    })?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn events(rt: &Runtime, args: &EventsArgs) -> Result<ExitCode, Failure> {
    let events = rt.events(args.id.as_str()).await?;
    if args.json {
        let view: serde_json::Map<String, serde_json::Value> = events
            .iter()
            .map(|e| {
                let value = e.value.to_json().unwrap_or(serde_json::Value::Null);
                (e.key.clone(), value)
            })
            .collect();
        emit(&format!("{}\n", serde_json::to_string_pretty(&view)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    if events.is_empty() {
        emit(&format!("`{}` has published no events\n", escape(&args.id)))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(vec!["KEY", "VALUE", "SET AT (UTC)"]);
    for e in &events {
        table.row(vec![
            (escape(&e.key), None),
            (format::truncate(&payload_text(&e.value), 80), None),
            (format::time(e.updated_at), None),
        ]);
    }
    emit(&table.render(format::colors()))?;
    Ok(ExitCode::SUCCESS)
}
