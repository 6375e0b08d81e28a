//! `--step-user UID[:GID]` of `wsfs run`: a plain argument type, so that the
//! clap definition (`args.rs`) builds on its own in `build.rs` too.

use std::str::FromStr;

use anyhow::{bail, Result};

/// `--step-user UID[:GID]`: the user (and group) of steps whose
/// `securityContext` does not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepUser {
    /// The user id.
    pub uid: Option<u32>,
    /// The group id.
    pub gid: Option<u32>,
}

/// A user or group id: a number below 4294967295 (which means "unchanged").
fn id(text: &str, what: &str) -> Result<u32> {
    match text.parse::<u32>() {
        Ok(id) if id != u32::MAX => Ok(id),
        _ => bail!(
            "{what} {text:?} is not a numeric id: give a number from 0 to {}",
            u32::MAX - 1
        ),
    }
}

impl FromStr for StepUser {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<StepUser> {
        let (uid, gid) = match text.split_once(':') {
            Some((uid, gid)) => (uid, Some(gid)),
            None => (text, None),
        };
        Ok(StepUser {
            uid: Some(id(uid, "user")?),
            gid: gid.map(|g| id(g, "group")).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_users_are_numeric_ids() {
        let parse = |text: &str| text.parse::<StepUser>().map_err(|e| e.to_string());
        assert_eq!(
            parse("1234"),
            Ok(StepUser {
                uid: Some(1234),
                gid: None
            })
        );
        assert_eq!(
            parse("0:100"),
            Ok(StepUser {
                uid: Some(0),
                gid: Some(100)
            })
        );
        assert_eq!(
            parse("builder").unwrap_err(),
            "user \"builder\" is not a numeric id: give a number from 0 to 4294967294"
        );
        assert!(parse("1:").unwrap_err().starts_with("group \"\""));
        assert!(parse("-1").is_err());
        assert!(parse("4294967295").is_err());
    }
}
