//! `/logging`: the log filter, changed at runtime. Envoy's `?level=` sets every logger;
//! `?paths=target:level,...` sets some (targets are Rust module paths here, not Envoy's
//! logger names).

use std::sync::{Arc, Mutex, PoisonError};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::reload;

/// Why the log levels were not changed.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level or a path is not one the filter understands.
    #[error(
        "invalid logging directive {directive:?}: {reason}; levels are trace, debug, info, warn, error, off"
    )]
    Invalid {
        /// The directive as built from the query.
        directive: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The subscriber holding the filter is gone.
    #[error("the log filter can no longer be changed: {0}")]
    Gone(String),
}

/// `level` when it is one (a bare word would otherwise read as a target name to the filter).
fn parse_level(level: &str) -> Result<&str, LoggingError> {
    level
        .parse::<LevelFilter>()
        .map(|_| level)
        .map_err(|error| LoggingError::Invalid {
            directive: level.to_owned(),
            reason: error.to_string(),
        })
}

type Reload = Box<dyn Fn(EnvFilter) -> Result<(), reload::Error> + Send + Sync>;

/// The process's log filter and a way to replace it.
#[derive(Clone)]
pub struct LogLevels {
    reload: Arc<Reload>,
    current: Arc<Mutex<String>>,
}

impl LogLevels {
    /// Levels changed through `reload`, starting at `initial` (an `EnvFilter` directive).
    pub fn new(
        initial: String,
        reload: impl Fn(EnvFilter) -> Result<(), reload::Error> + Send + Sync + 'static,
    ) -> Self {
        Self {
            reload: Arc::new(Box::new(reload)),
            current: Arc::new(Mutex::new(initial)),
        }
    }

    /// The directive in force.
    pub fn current(&self) -> String {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every target at `level`.
    pub fn set_all(&self, level: &str) -> Result<String, LoggingError> {
        self.set(parse_level(level)?.to_owned())
    }

    /// The targets of `paths` (`target:level,...`) at their levels, the others unchanged.
    pub fn set_paths(&self, paths: &str) -> Result<String, LoggingError> {
        let mut directive = self.current();
        for path in paths.split(',').filter(|path| !path.is_empty()) {
            let (target, level) = path.rsplit_once(':').ok_or_else(|| LoggingError::Invalid {
                directive: path.to_owned(),
                reason: "expected target:level".to_owned(),
            })?;
            let level = parse_level(level)?;
            directive.push(',');
            directive.push_str(&format!("{target}={level}"));
        }
        self.set(directive)
    }

    fn set(&self, directive: String) -> Result<String, LoggingError> {
        let filter =
            EnvFilter::builder()
                .parse(&directive)
                .map_err(|error| LoggingError::Invalid {
                    directive: directive.clone(),
                    reason: error.to_string(),
                })?;
        (self.reload)(filter).map_err(|error| LoggingError::Gone(error.to_string()))?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = directive.clone();
        tracing::info!(%directive, "log levels changed");
        Ok(directive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels() -> (LogLevels, Arc<Mutex<Vec<String>>>) {
        let applied = Arc::new(Mutex::new(Vec::new()));
        let seen = applied.clone();
        let levels = LogLevels::new("info".to_owned(), move |filter| {
            seen.lock().expect("lock").push(filter.to_string());
            Ok(())
        });
        (levels, applied)
    }

    #[test]
    fn a_level_replaces_the_filter_and_a_bad_one_changes_nothing() {
        let (levels, applied) = levels();
        assert_eq!(levels.set_all("debug").expect("debug"), "debug");
        assert!(levels.set_all("loud").is_err());
        assert_eq!(levels.current(), "debug");
        assert_eq!(applied.lock().expect("lock").as_slice(), ["debug"]);
    }

    #[test]
    fn paths_add_per_target_levels() {
        let (levels, _) = levels();
        let directive = levels.set_paths("mesh_host::admin:trace").expect("paths");
        assert_eq!(directive, "info,mesh_host::admin=trace");
        assert!(levels.set_paths("no_level").is_err());
        assert!(levels.set_paths("mesh_host:loud").is_err());
    }
}
