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

impl FromSql for crate::codec::Codec {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        crate::codec::Codec::from_name(name).ok_or_else(|| {
            FromSqlError::Other(
                format!("unknown codec `{name}` (built without its cargo feature?)").into(),
            )
        })
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                Error::Busy {
                    message: e.to_string(),
                }
            }
            // SQLite's message names what is wrong; the statement it was
            // parsing is the library's own text, of no use to a user and
            // many lines long: logged, not shown.
            _ => match e {
                rusqlite::Error::SqlInputError {
                    error, msg, sql, ..
                } => {
                    tracing::debug!(%sql, %msg, "SQLite refused a statement");
                    Error::Database(DatabaseError::new(rusqlite::Error::SqliteFailure(
                        error,
                        Some(msg),
                    )))
                }
                e => Error::Database(DatabaseError::new(e)),
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_problem_without_the_statement() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let statement = "SELECT id\n  FROM nowhere\n WHERE oops oops";
        let err = Error::from(conn.prepare(statement).unwrap_err());
        let text = err.to_string();
        assert!(text.contains("syntax error"), "{text}");
        assert!(
            !text.contains("FROM nowhere") && !text.contains('\n'),
            "{text}"
        );
    }
}
