//! The report's plots, drawn with plotters into SVG strings: the operation
//! timeline, latency scatters with quantile curves, throughput and
//! per-shard delivery lag. Every plot shades the faults' intervals so a
//! reader sees what the cluster went through at each moment.

use std::collections::{BTreeMap, BTreeSet};

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::series::{Bucket, Outcome, Point, Series, Span};

/// Plot width and height in pixels.
const WIDTH: u32 = 1100;
const HEIGHT: u32 = 340;
/// Quantile curves have at most this many points (buckets are merged).
const CURVE_POINTS: usize = 200;
/// Shade of fault intervals.
const BAND: RGBAColor = RGBAColor(214, 39, 40, 0.12);
/// Colours per outcome.
const OK: RGBColor = RGBColor(44, 160, 44);
const FAIL: RGBColor = RGBColor(214, 39, 40);
const INFO: RGBColor = RGBColor(255, 127, 14);
const OPEN: RGBColor = RGBColor(127, 127, 127);
/// Series colours for lines (quantiles, shards, throughput).
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// A plot could not be drawn (plotters' error, as text).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the {plot} plot: {reason}")]
pub struct PlotError {
    /// Which plot.
    pub plot: &'static str,
    /// What plotters said.
    pub reason: String,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Drawn = Result<(), Box<dyn std::error::Error + 'static>>;

/// Draws into a fresh SVG string.
fn svg(plot: &'static str, draw: impl FnOnce(&Area<'_>) -> Drawn) -> Result<String, PlotError> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (WIDTH, HEIGHT)).into_drawing_area();
        let drawn = root.fill(&WHITE).map_err(Into::into).and_then(|()| draw(&root));
        let presented = drawn.and_then(|()| root.present().map_err(Into::into));
        presented.map_err(|error| PlotError { plot, reason: error.to_string() })?;
    }
    Ok(out)
}

fn seconds(nanoseconds: u64) -> f64 {
    nanoseconds as f64 / 1e9
}

/// The x range of every plot: the whole run, at least one second.
fn x_range(series: &Series) -> std::ops::Range<f64> {
    0.0..seconds(series.end_time).max(1.0)
}

/// Fault intervals as (start, end, label), ends clipped to the run.
fn bands(series: &Series) -> Vec<(f64, f64, String)> {
    let end = x_range(series).end;
    let faults = &series.faults.faults;
    faults
        .iter()
        .map(|fault| {
            let stop = if fault.end_time == u64::MAX { end } else { seconds(fault.end_time) };
            (
                seconds(fault.start_time),
                stop.max(seconds(fault.start_time)),
                format!("{} {}", fault.f, fault.nodes.join(",")),
            )
        })
        .collect()
}

fn outcome_colour(outcome: Outcome) -> RGBColor {
    match outcome {
        Outcome::Ok => OK,
        Outcome::Fail => FAIL,
        Outcome::Info => INFO,
        Outcome::Open => OPEN,
    }
}

/// Operations per process over time, one lane per client process, with
/// fault bands and their names.
pub fn timeline(series: &Series) -> Result<String, PlotError> {
    let spans: &[Span] = &series.spans.items;
    let lanes: BTreeMap<u64, usize> =
        spans.iter().map(|s| s.process).collect::<BTreeSet<_>>().into_iter().enumerate().map(|(i, p)| (p, i)).collect();
    let processes: Vec<u64> = lanes.keys().copied().collect();
    // Lane `i` is centred on `y = i`, so the axis ticks (whole numbers) fall
    // on lanes and can be labelled with that lane's process id.
    let (bottom, top) = (-0.5, lanes.len().max(1) as f64 - 0.5);
    let process_of = |y: &f64| {
        let lane = y.round();
        match (lane - y).abs() < 1e-6 && lane >= 0.0 {
            true => processes.get(lane as usize).map(u64::to_string).unwrap_or_default(),
            false => String::new(),
        }
    };
    svg("timeline", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption("operations per process (green ok, red fail, orange info, grey open)", ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(x_range(series), bottom..top)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("time (s)")
            .y_desc("process")
            .y_label_formatter(&process_of)
            .draw()?;
        for (start, end, label) in bands(series) {
            chart.draw_series([Rectangle::new([(start, bottom), (end, top)], BAND.filled())])?;
            chart.draw_series([Text::new(
                label,
                (start, top - (top - bottom) * 0.02),
                ("sans-serif", 11).into_font().color(&FAIL),
            )])?;
        }
        chart.draw_series(spans.iter().map(|span| {
            let lane = lanes.get(&span.process).copied().unwrap_or(0) as f64;
            let end = seconds(span.end).max(seconds(span.start) + 0.002);
            Rectangle::new(
                [(seconds(span.start), lane - 0.35), (end, lane + 0.35)],
                outcome_colour(span.outcome).filled(),
            )
        }))?;
        Ok(())
    })
}

/// A latency scatter (log scale, coloured by outcome) with p50/p95/p99
/// curves over time; `of` picks the bucket's latencies for the curves.
pub fn latency(
    series: &Series,
    title: &str,
    points: &[Point],
    of: impl Fn(&Bucket) -> &[f32],
) -> Result<String, PlotError> {
    let curves = quantile_curves(&series.buckets, of);
    let latencies = || points.iter().map(|p| f64::from(p.millis)).chain(curves.iter().flat_map(|(_, _, q)| *q));
    let highest = latencies().fold(1.0, f64::max);
    // The log axis starts below the fastest latency (down to 1 µs), so fast
    // in-memory histories are not squashed onto the axis.
    let floor = latencies().filter(|&ms| ms > 0.0).fold(0.1, f64::min).max(0.001) / 1.5;
    svg("latency", |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(x_range(series), (floor..highest * 1.5).log_scale())?;
        chart.configure_mesh().x_desc("time (s)").y_desc("latency (ms)").draw()?;
        for (start, end, _) in bands(series) {
            chart.draw_series([Rectangle::new([(start, floor), (end, highest * 1.5)], BAND.filled())])?;
        }
        chart.draw_series(points.iter().map(|point| {
            let colour = outcome_colour(point.outcome).mix(0.45);
            Circle::new((seconds(point.time), f64::from(point.millis).max(floor)), 1.5, colour.filled())
        }))?;
        for (rank, name) in ["p50", "p95", "p99"].into_iter().enumerate() {
            let colour = PALETTE[[0, 4, 3][rank]];
            // One line per stretch with data, so a gap (nothing completed)
            // shows as a gap rather than as a slope.
            for (stretch, part) in curves.chunk_by(|a, b| b.0 - a.0 <= a.1).enumerate() {
                let line = part.iter().map(|(time, _, quantiles)| (*time, quantiles[rank].max(floor)));
                let drawn = chart.draw_series(LineSeries::new(line, colour.stroke_width(2)))?;
                if stretch == 0 {
                    drawn
                        .label(name)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
                }
            }
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    })
}

/// One per-second count of a bucket.
type Count = fn(&Bucket) -> u64;

/// Records appended (acknowledged) and delivered for the first time per
/// second, and failed or indefinite appends per second.
pub fn throughput(series: &Series) -> Result<String, PlotError> {
    let lines: [(&str, Count); 3] = [
        ("records appended/s", |b| b.appended),
        ("records first delivered/s", |b| b.delivered),
        ("appends failed or unknown/s", |b| b.append_errors),
    ];
    let highest = series.buckets.iter().flat_map(|b| lines.iter().map(move |(_, of)| of(b))).max().unwrap_or(0);
    counts_over_time(series, "throughput", "throughput per second", "per second", highest, |chart| {
        for (rank, (name, of)) in lines.iter().enumerate() {
            let colour = PALETTE[[0, 2, 3][rank]];
            let line = series.buckets.iter().enumerate().map(|(second, b)| (second as f64 + 0.5, of(b) as f64));
            chart
                .draw_series(LineSeries::new(line, colour.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        Ok(())
    })
}

/// Acknowledged records not yet delivered, per shard, at the end of each
/// second: how far consumers were behind.
pub fn lag(series: &Series) -> Result<String, PlotError> {
    let shards: BTreeSet<u64> = series.buckets.iter().flat_map(|b| b.unseen.keys().copied()).collect();
    let highest = series.buckets.iter().flat_map(|b| b.unseen.values().copied()).max().unwrap_or(0);
    let title = "delivery lag: acknowledged records not yet delivered, per shard";
    counts_over_time(series, "lag", title, "records unseen", highest, |chart| {
        for (rank, shard) in shards.iter().enumerate() {
            let colour = PALETTE[rank % PALETTE.len()];
            let line = series
                .buckets
                .iter()
                .enumerate()
                .map(|(second, b)| (second as f64 + 1.0, b.unseen.get(shard).copied().unwrap_or(0) as f64));
            chart
                .draw_series(LineSeries::new(line, colour.stroke_width(2)))?
                .label(format!("shard {shard}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
        }
        Ok(())
    })
}

/// One named line of [`lines_over_time`]: (seconds, value) points; a
/// missing second is left out, and the line breaks where seconds are
/// missing.
#[derive(Debug, Clone)]
pub struct Line {
    /// The legend's name.
    pub name: String,
    /// The points, in time order.
    pub points: Vec<(f64, f64)>,
}

/// Lines over time with shaded, labelled intervals (the bench's faults):
/// the bench page's throughput and latency plots. A `log` plot draws
/// values on a log10 axis (latencies spanning milliseconds to seconds).
pub fn lines_over_time(
    plot: &'static str,
    title: &str,
    y_desc: &str,
    x_end: f64,
    bands: &[(f64, f64, String)],
    lines: &[Line],
    log: bool,
) -> Result<String, PlotError> {
    let scale = |y: f64| if log { y.max(1e-3).log10() } else { y };
    let values = || lines.iter().flat_map(|line| line.points.iter().map(|&(_, y)| scale(y)));
    let highest = values().fold(if log { 0.0 } else { 1.0 }, f64::max);
    let lowest = if log { values().fold(highest, f64::min).floor() } else { 0.0 };
    let top = if log { highest.ceil().max(lowest + 1.0) } else { highest * 1.1 };
    // A log axis is labelled at whole powers of ten only.
    let label = |y: &f64| match log {
        false => format!("{y}"),
        true if (y - y.round()).abs() < 1e-6 => format!("{}", 10f64.powi(y.round() as i32)),
        true => String::new(),
    };
    let y_labels = if log { (top - lowest) as usize + 1 } else { 10 };
    svg(plot, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..x_end.max(1.0), lowest..top)?;
        chart.configure_mesh().x_desc("time (s)").y_desc(y_desc).y_labels(y_labels).y_label_formatter(&label).draw()?;
        for (start, end, name) in bands {
            chart.draw_series([Rectangle::new([(*start, lowest), (*end, top)], BAND.filled())])?;
            let font = ("sans-serif", 11).into_font().color(&FAIL);
            chart.draw_series([Text::new(name.clone(), (*start, top - (top - lowest) * 0.02), font)])?;
        }
        for (rank, line) in lines.iter().enumerate() {
            let colour = PALETTE[rank % PALETTE.len()];
            for (stretch, part) in line.points.chunk_by(|a, b| b.0 - a.0 <= 1.0 + 1e-9).enumerate() {
                let points = part.iter().map(|&(x, y)| (x, scale(y)));
                let drawn = chart.draw_series(LineSeries::new(points, colour.stroke_width(2)))?;
                if stretch == 0 {
                    drawn
                        .label(line.name.clone())
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], colour.stroke_width(2)));
                }
            }
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    })
}

type CountChart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A linear plot of counts over the run, with fault bands and a legend;
/// `lines` draws the series.
fn counts_over_time(
    series: &Series,
    plot: &'static str,
    title: &str,
    y_desc: &str,
    highest: u64,
    lines: impl FnOnce(&mut CountChart<'_, '_>) -> Drawn,
) -> Result<String, PlotError> {
    let top = (highest as f64 * 1.1).max(1.0);
    svg(plot, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(x_range(series), 0.0..top)?;
        chart.configure_mesh().x_desc("time (s)").y_desc(y_desc).draw()?;
        for (start, end, _) in bands(series) {
            chart.draw_series([Rectangle::new([(start, 0.0), (end, top)], BAND.filled())])?;
        }
        lines(&mut chart)?;
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
        Ok(())
    })
}

/// (time at the middle of a group of buckets, the group's width in
/// seconds, [p50, p95, p99]) for every group with at least one latency;
/// buckets are grouped so there are at most [`CURVE_POINTS`] groups.
fn quantile_curves(buckets: &[Bucket], of: impl Fn(&Bucket) -> &[f32]) -> Vec<(f64, f64, [f64; 3])> {
    let group = buckets.len().div_ceil(CURVE_POINTS).max(1);
    let mut curves = Vec::new();
    for (number, chunk) in buckets.chunks(group).enumerate() {
        let mut latencies: Vec<f32> = chunk.iter().flat_map(|b| of(b).iter().copied()).collect();
        if latencies.is_empty() {
            continue;
        }
        latencies.sort_by(f32::total_cmp);
        let at = |q: f64| f64::from(latencies[((latencies.len() - 1) as f64 * q).round() as usize]);
        let middle = (number * group) as f64 + chunk.len() as f64 / 2.0;
        curves.push((middle, group as f64, [at(0.50), at(0.95), at(0.99)]));
    }
    curves
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: quantiles are exact order statistics of each group.
    #[test]
    fn quantile_curves_are_order_statistics() {
        let bucket = |latencies: Vec<f32>| Bucket { append_latencies: latencies, ..Bucket::default() };
        let buckets = vec![bucket((1..=100).map(|v| v as f32).collect()), bucket(Vec::new()), bucket(vec![7.0])];
        let curves = quantile_curves(&buckets, |b| &b.append_latencies);
        assert_eq!(curves, vec![(0.5, 1.0, [51.0, 95.0, 99.0]), (2.5, 1.0, [7.0, 7.0, 7.0])]);
    }
}
