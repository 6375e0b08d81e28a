//! Rows of results, printed as a markdown table or as JSON. Every ratio is
//! wsfs / baseline (lower is better for both times and bytes).

use std::time::Duration;

use serde_json::{json, Value};

/// Repeated timings of one thing; reported by their median.
#[derive(Clone, Default)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    /// The median (the mean of the middle two for an even count).
    pub fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        match v.len() {
            0 => Duration::ZERO,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
    }

    /// Every sample, in run order: `371/521/427 ms`.
    pub fn runs(&self) -> String {
        let ms: Vec<String> = self.millis().iter().map(|ms| format!("{ms:.0}")).collect();
        format!("{} ms", ms.join("/"))
    }

    fn millis(&self) -> Vec<f64> {
        self.0.iter().map(|d| d.as_secs_f64() * 1e3).collect()
    }
}

/// A measured quantity.
#[derive(Clone)]
pub enum Qty {
    /// Timings.
    Time(Samples),
    /// A byte count.
    Bytes(u64),
    /// A count of events.
    Count(u64),
}

impl Qty {
    fn value(&self) -> f64 {
        match self {
            Qty::Time(s) => s.median().as_secs_f64(),
            Qty::Bytes(b) | Qty::Count(b) => *b as f64,
        }
    }

    /// The value as the tables show it.
    pub fn show(&self) -> String {
        match self {
            Qty::Time(s) => time(s.median()),
            Qty::Bytes(b) => bytes(*b),
            Qty::Count(n) => n.to_string(),
        }
    }

    /// The quantity `json` wrote, or `None` when `v` is not one.
    pub fn from_json(v: &Value) -> Option<Qty> {
        if let Some(samples) = v.get("samples_ms").and_then(Value::as_array) {
            let ms: Option<Vec<f64>> = samples.iter().map(Value::as_f64).collect();
            return Some(Qty::Time(Samples(
                ms?.into_iter()
                    .map(|ms| Duration::from_secs_f64(ms / 1e3))
                    .collect(),
            )));
        }
        v.get("bytes")
            .and_then(Value::as_u64)
            .map(Qty::Bytes)
            .or_else(|| v.get("count").and_then(Value::as_u64).map(Qty::Count))
    }

    /// Whether this is a set of timings.
    pub fn is_time(&self) -> bool {
        matches!(self, Qty::Time(_))
    }

    fn json(&self) -> Value {
        match self {
            Qty::Time(s) => json!({ "median_ms": s.median().as_secs_f64() * 1e3, "samples_ms": s.millis() }),
            Qty::Bytes(b) => json!({ "bytes": b }),
            Qty::Count(n) => json!({ "count": n }),
        }
    }
}

/// What a row should reach, from the issue.
#[derive(Clone, Copy)]
pub enum Target {
    /// None given.
    None,
    /// wsfs at least this many times faster (ratio ≤ 1/x).
    Faster(f64),
    /// ratio ≤ x.
    AtMost(f64),
    /// The wsfs value must be zero.
    Zero,
    /// The wsfs value itself at most this (seconds for times).
    Within(f64),
}

/// One line of the table.
pub struct Row {
    /// What was measured.
    pub name: String,
    /// The wsfs value.
    pub wsfs: Qty,
    /// The baseline and how it was made, when there is one.
    pub baseline: Option<(Qty, String)>,
    /// The goal.
    pub target: Target,
    /// Whether the README's table of headline figures shows it.
    pub headline: bool,
}

impl Row {
    /// A row comparing wsfs with a baseline.
    pub fn new(
        name: impl Into<String>,
        wsfs: Qty,
        baseline: Qty,
        how: impl Into<String>,
        target: Target,
    ) -> Row {
        Row {
            name: name.into(),
            wsfs,
            baseline: Some((baseline, how.into())),
            target,
            headline: false,
        }
    }

    /// This row, marked for the README's table of headline figures.
    pub fn headline(self) -> Row {
        Row {
            headline: true,
            ..self
        }
    }

    /// A row comparing two sets of timings.
    pub fn times(name: impl Into<String>, wsfs: &Samples, base: &Samples, how: &str, target: Target) -> Row {
        Row::new(
            name,
            Qty::Time(wsfs.clone()),
            Qty::Time(base.clone()),
            how,
            target,
        )
    }

    /// wsfs / baseline.
    pub fn ratio(&self) -> Option<f64> {
        let (base, _) = self.baseline.as_ref()?;
        Some(self.wsfs.value() / base.value()).filter(|r| r.is_finite())
    }

    /// Whether the target is reached; `None` when there is none.
    pub fn met(&self) -> Option<bool> {
        match (self.target, self.ratio()) {
            (Target::None, _) => None,
            (Target::Zero, _) => Some(self.wsfs.value() == 0.0),
            (Target::Within(x), _) => Some(self.wsfs.value() <= x),
            (Target::Faster(x), Some(r)) => Some(r <= 1.0 / x),
            (Target::AtMost(x), Some(r)) => Some(r <= x),
            (_, None) => Some(false),
        }
    }

    fn ratio_cell(&self) -> String {
        ratio_cell(self.ratio(), self.wsfs.is_time())
    }

    fn target_cell(&self) -> String {
        let goal = match self.target {
            Target::None => return "—".into(),
            Target::Faster(x) => format!("≥ {x}x faster"),
            Target::AtMost(x) => format!("≤ {x}x"),
            Target::Zero => "= 0".into(),
            Target::Within(x) => match self.wsfs {
                Qty::Time(_) => format!("≤ {}", time(Duration::from_secs_f64(x))),
                _ => format!("≤ {x}"),
            },
        };
        let verdict = if self.met() == Some(true) {
            "met"
        } else {
            "**missed**"
        };
        format!("{goal}: {verdict}")
    }
}

/// The markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(TABLE_HEAD);
    for row in rows {
        let base = match &row.baseline {
            Some((qty, how)) => format!("{} ({how})", qty.show()),
            None => "—".into(),
        };
        out += &table_line([
            row.name.clone(),
            row.wsfs.show(),
            base,
            row.ratio_cell(),
            row.target_cell(),
        ]);
    }
    out
}

/// The header of the table of rows.
pub const TABLE_HEAD: &str = "| measurement | wsfs | baseline | ratio | target |\n|---|---|---|---|---|\n";

/// One line of the table of rows.
pub fn table_line(cells: [String; 5]) -> String {
    format!("| {} |\n", cells.map(|c| c.replace('|', "\\|")).join(" | "))
}

/// The ratio column: `0.57x (1.8x faster)` for a time wsfs beat.
pub fn ratio_cell(ratio: Option<f64>, is_time: bool) -> String {
    match ratio {
        None => "—".into(),
        Some(r) if is_time && r < 1.0 => format!("{} ({:.1}x faster)", self::ratio(r), 1.0 / r),
        Some(r) => self::ratio(r),
    }
}

/// The rows as JSON.
pub fn json_rows(rows: &[Row]) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            json!({
                "measurement": r.name,
                "wsfs": r.wsfs.json(),
                "baseline": r.baseline.as_ref().map(|(q, how)| json!({ "how": how, "value": q.json() })),
                "ratio": r.ratio(),
                "target": r.target_cell(),
                "met": r.met(),
                "headline": r.headline,
            })
        })
        .collect();
    Value::Array(rows)
}

/// `1.23 s`, `45.6 ms`.
pub fn time(d: Duration) -> String {
    let s = d.as_secs_f64();
    match s {
        s if s >= 10.0 => format!("{s:.1} s"),
        s if s >= 1.0 => format!("{s:.2} s"),
        s if s >= 0.01 => format!("{:.0} ms", s * 1e3),
        s => format!("{:.1} ms", s * 1e3),
    }
}

/// `61.7 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `0.57x`, `0.0083x` (two significant digits below 0.1).
pub fn ratio(r: f64) -> String {
    let decimals = if r >= 0.1 || r <= 0.0 {
        2
    } else {
        (-r.log10()).ceil() as usize + 1
    };
    format!("{r:.decimals$}x")
}
