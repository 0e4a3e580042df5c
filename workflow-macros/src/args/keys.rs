//! Option names, spelled once as custom keywords, and the attribute they belong to.

use std::fmt;
use syn::Token;
use syn::parse::ParseStream;

/// The attribute being expanded; error messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttrKind {
    Step,
    Workflow,
}

impl AttrKind {
    /// The options this attribute accepts, in the order the docs list them.
    pub(crate) fn keys(self) -> &'static [Key] {
        match self {
            AttrKind::Step => &[
                Key::Name,
                Key::MaxAttempts,
                Key::Backoff,
                Key::Exponential,
                Key::MaxBackoff,
                Key::Timeout,
                Key::AtMostOnce,
                Key::Crate,
            ],
            AttrKind::Workflow => &[
                Key::Name,
                Key::MaxRestarts,
                Key::RestartDelay,
                Key::Timeout,
                Key::AllowNondeterministic,
                Key::Crate,
            ],
        }
    }

    pub(crate) fn other(self) -> AttrKind {
        match self {
            AttrKind::Step => AttrKind::Workflow,
            AttrKind::Workflow => AttrKind::Step,
        }
    }
}

impl fmt::Display for AttrKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttrKind::Step => "`#[step]`",
            AttrKind::Workflow => "`#[workflow]`",
        })
    }
}

/// Defines the custom keywords of the option names and the `Key` enum over them, so each
/// name is written exactly once.
macro_rules! option_keys {
    ($($keyword:ident => $variant:ident),* $(,)?) => {
        pub(crate) mod kw {
            $(syn::custom_keyword!($keyword);)*
        }

        /// One option name. `crate` is a Rust keyword rather than a custom one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Key {
            $($variant,)*
            Crate,
        }

        impl Key {
            /// The option at the front of `input`, if it is one we know.
            pub(crate) fn peek(input: ParseStream<'_>) -> Option<Key> {
                $(
                    if input.peek(kw::$keyword) {
                        return Some(Key::$variant);
                    }
                )*
                if input.peek(Token![crate]) {
                    return Some(Key::Crate);
                }
                None
            }

            pub(crate) fn as_str(self) -> &'static str {
                match self {
                    $(Key::$variant => stringify!($keyword),)*
                    Key::Crate => "crate",
                }
            }
        }
    };
}

option_keys! {
    name => Name,
    max_attempts => MaxAttempts,
    backoff => Backoff,
    exponential => Exponential,
    max_backoff => MaxBackoff,
    timeout => Timeout,
    at_most_once => AtMostOnce,
    max_restarts => MaxRestarts,
    restart_delay => RestartDelay,
    allow_nondeterministic => AllowNondeterministic,
}

impl Key {
    /// A typical value, shown in error messages.
    pub(crate) fn example_value(self) -> &'static str {
        match self {
            Key::Name => "\"charge_card\"",
            Key::MaxAttempts => "5",
            Key::Backoff => "\"200ms\"",
            Key::Exponential => "false",
            Key::MaxBackoff => "\"30s\"",
            Key::Timeout => "\"5s\"",
            Key::AtMostOnce => "true",
            Key::MaxRestarts => "3",
            Key::RestartDelay => "\"5s\"",
            Key::AllowNondeterministic => "true",
            Key::Crate => "\"my_workflow\"",
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.as_str())
    }
}

/// An example of `key = value`, for messages.
pub(crate) struct Example(pub(crate) Key);

impl fmt::Display for Example {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{} = {}`", self.0.as_str(), self.0.example_value())
    }
}

/// A list of keys, for messages: `` `name`, `max_restarts`, `restart_delay`, `crate` ``.
pub(crate) struct KeyList(pub(crate) &'static [Key]);

impl fmt::Display for KeyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, key) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{key}")?;
        }
        Ok(())
    }
}
