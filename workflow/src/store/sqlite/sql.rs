//! SQLite conversions of the statuses (lowercase text) and of its errors.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::error::{DatabaseError, Error};
use crate::status::{
    AdminAction, AttemptStatus, EntryKind, ExecutionStatus, PauseCause, StepStatus,
};

macro_rules! text_sql {
    ($($name:ty),+) => {$(
        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                let text = value.as_str()?;
                text.parse().map_err(|e: String| FromSqlError::Other(e.into()))
            }
        }
    )+};
}

text_sql!(
    ExecutionStatus,
    StepStatus,
    EntryKind,
    AttemptStatus,
    PauseCause,
    AdminAction
);

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::Busy {
                    message: e.to_string(),
                }
            }
            _ => Error::Database(DatabaseError::new(e)),
        }
    }
}

/// A copy of a SQLite error for each waiter of a failed commit.
pub(super) fn copy_error(e: &rusqlite::Error) -> rusqlite::Error {
    match e {
        rusqlite::Error::SqliteFailure(code, msg) => {
            rusqlite::Error::SqliteFailure(*code, msg.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(other.to_string()),
        ),
    }
}
