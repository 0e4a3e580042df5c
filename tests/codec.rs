//! Payload codecs and limits: the size limit refuses inputs before anything
//! is written and fails oversized step results; bincode (behind its feature)
//! runs the same workflows and is recorded per execution.

mod support;

use replayflow::{AnyError, Context, Error, ExecutionStatus, step, workflow};
use serde::{Deserialize, Serialize};
use support::{both_stores, within};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Blob {
    label: String,
    bytes: Vec<u8>,
}

#[step]
async fn grow(blob: &Blob, factor: usize) -> Result<Blob, AnyError> {
    Ok(Blob {
        label: format!("{} x{factor}", blob.label),
        bytes: blob.bytes.repeat(factor),
    })
}

#[workflow]
async fn blobs(_ctx: Context, blob: Blob, factor: usize) -> Result<usize, AnyError> {
    let grown = grow(&blob, factor).await?;
    Ok(grown.bytes.len())
}

both_stores!(
    an_input_over_the_limit_is_refused_before_it_is_written,
    |db| async move {
        let rt = db.builder().max_payload_bytes(1024).open().await.unwrap();
        let big = Blob {
            label: "big".into(),
            bytes: vec![7; 4096],
        };
        let err = blobs::start(&rt, "too-big", big, 1).await.unwrap_err();
        assert!(
            matches!(err, Error::PayloadTooLarge { limit: 1024, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("too-big"), "{err}");
        assert!(matches!(
            rt.status("too-big").await,
            Err(Error::NotFound(_))
        ));
    }
);

both_stores!(
    a_step_result_over_the_limit_fails_the_step,
    |db| async move {
        let rt = db.builder().max_payload_bytes(1024).open().await.unwrap();
        let small = Blob {
            label: "small".into(),
            bytes: vec![1; 16],
        };
        let err = within(
            blobs::start(&rt, "grows", small, 100)
                .await
                .unwrap()
                .result(),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string().contains("over the limit of 1024 bytes"),
            "{err}"
        );
        let info = rt.status("grows").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Failed);
        assert_eq!(
            info.steps[0].attempts, 1,
            "an oversized result is permanent"
        );
    }
);

#[cfg(feature = "bincode")]
both_stores!(bincode_executions_run_and_replay, |db| async move {
    use replayflow::Codec;
    let rt = db.builder().codec(Codec::Bincode).open().await.unwrap();
    let blob = Blob {
        label: "b".into(),
        bytes: vec![1, 2, 3],
    };
    let n = within(blobs::start(&rt, "bin-1", blob, 2).await.unwrap().result())
        .await
        .unwrap();
    assert_eq!(n, 6);
    let info = rt.status("bin-1").await.unwrap();
    assert_eq!(info.input.codec(), Codec::Bincode);
    assert!(info.input.to_json().is_none());
    let out: Blob = info.steps[0].output.as_ref().unwrap().decode().unwrap();
    assert_eq!(out.bytes, [1, 2, 3, 1, 2, 3]);
});
