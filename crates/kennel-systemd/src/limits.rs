//! Resource limits (`--memory`, `--tasks`, `--cpu`): validated here so that a typo is a
//! clear error from kennel rather than a D-Bus error from the manager.

use crate::error::SystemdError;

/// Limits of the unit's cgroup; `None` leaves the manager's default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// `MemoryMax=`: bytes with an optional K, M, G or T suffix (base 1024), a percentage
    /// of the machine's memory, or `infinity`.
    pub memory: Option<String>,
    /// `TasksMax=`: a number of processes and threads, a percentage, or `infinity`.
    pub tasks: Option<String>,
    /// `CPUQuota=`: a percentage of one CPU (`200%` is two CPUs).
    pub cpu: Option<String>,
}

impl Limits {
    /// Parses the flags' values; each is checked before anything runs.
    pub fn parse(
        memory: Option<&str>,
        tasks: Option<&str>,
        cpu: Option<&str>,
    ) -> Result<Limits, SystemdError> {
        Ok(Limits {
            memory: memory.map(parse_memory).transpose()?,
            tasks: tasks.map(parse_tasks).transpose()?,
            cpu: cpu.map(parse_cpu).transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.tasks.is_none() && self.cpu.is_none()
    }
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_digit())
}

fn percentage(s: &str) -> Option<String> {
    let n = s.strip_suffix('%')?;
    (is_number(n) && n.parse::<u64>().ok()? > 0).then(|| s.to_string())
}

fn parse_memory(value: &str) -> Result<String, SystemdError> {
    let bad = || {
        SystemdError::BadLimit {
        flag: "--memory",
        value: value.into(),
        expected: "expected bytes with an optional K, M, G or T suffix (e.g. 4G), a percentage, or infinity",
    }
    };
    let v = value.trim();
    if v == "infinity" {
        return Ok(v.into());
    }
    if let Some(p) = percentage(v) {
        return Ok(p);
    }
    let upper = v.to_ascii_uppercase();
    let digits = upper.trim_end_matches(['K', 'M', 'G', 'T']);
    let suffix_len = upper.len() - digits.len();
    if is_number(digits) && suffix_len <= 1 && digits.parse::<u64>().map_err(|_| bad())? > 0 {
        Ok(upper)
    } else {
        Err(bad())
    }
}

fn parse_tasks(value: &str) -> Result<String, SystemdError> {
    let v = value.trim();
    if v == "infinity" {
        return Ok(v.into());
    }
    if let Some(p) = percentage(v) {
        return Ok(p);
    }
    match v.parse::<u64>() {
        Ok(n) if n > 0 && is_number(v) => Ok(n.to_string()),
        _ => Err(SystemdError::BadLimit {
            flag: "--tasks",
            value: value.into(),
            expected: "expected a positive number of processes, a percentage, or infinity",
        }),
    }
}

fn parse_cpu(value: &str) -> Result<String, SystemdError> {
    let bad = || SystemdError::BadLimit {
        flag: "--cpu",
        value: value.into(),
        expected: "expected a number of CPUs (e.g. 1.5) or a percentage of one CPU (e.g. 150%)",
    };
    let v = value.trim();
    if let Some(p) = percentage(v) {
        return Ok(p);
    }
    let plain = !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.');
    let cpus: f64 = if plain {
        v.parse().map_err(|_| bad())?
    } else {
        return Err(bad());
    };
    let percent = (cpus * 100.0).round();
    if (1.0..=100_000.0).contains(&percent) {
        Ok(format!("{percent:.0}%"))
    } else {
        Err(bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_values_are_normalized() -> Result<(), SystemdError> {
        let l = Limits::parse(Some("4g"), Some("512"), Some("1.5"))?;
        assert_eq!(l.memory.as_deref(), Some("4G"));
        assert_eq!(l.tasks.as_deref(), Some("512"));
        assert_eq!(l.cpu.as_deref(), Some("150%"));
        let l = Limits::parse(Some("50%"), Some("infinity"), Some("200%"))?;
        assert_eq!(l.memory.as_deref(), Some("50%"));
        assert_eq!(l.tasks.as_deref(), Some("infinity"));
        assert_eq!(l.cpu.as_deref(), Some("200%"));
        assert!(Limits::parse(None, None, None)?.is_empty());
        Ok(())
    }

    #[test]
    fn bad_values_are_clear_errors() {
        for (m, t, c) in [
            (Some("4GB"), None, None),
            (Some("-1"), None, None),
            (Some("0"), None, None),
            (Some("lots"), None, None),
            (None, Some("1.5"), None),
            (None, Some("0"), None),
            (None, None, Some("two")),
            (None, None, Some("0")),
            (None, None, Some("1.2.3")),
            (None, None, Some("%")),
        ] {
            let err = Limits::parse(m, t, c).err();
            assert!(
                matches!(err, Some(SystemdError::BadLimit { .. })),
                "{m:?} {t:?} {c:?}: {err:?}"
            );
        }
    }
}
