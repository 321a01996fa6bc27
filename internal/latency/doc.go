// Package latency summarises latency samples for hotline's measurements
// (`hotlinectl bench` and the drill report): nearest-rank percentiles of
// durations and their conversion to the fractional milliseconds both
// print.
//
// Contract: the functions are pure; [Of] sorts its argument in place and
// never fails (no samples give the zero [Summary]); [Percentile] wants
// its input sorted ascending and returns 0 for none.
//
// It is a package of its own, not part of daemon/drill, so that bench,
// which is no drill, does not depend on the drill engine.
package latency
