package drill

import (
	"encoding/xml"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hotline-link/hotline/internal/latency"
)

const (
	svgW, svgH     = 960, 420
	svgLeft        = 70
	svgRight       = svgW - 20
	svgTop         = 70
	svgBottom      = 340
	svgLostBand    = svgTop - 10
	svgGapBracketY = 392
)

// esc escapes s for XML text and attribute values.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) //nolint:errcheck // strings.Builder does not fail
	return b.String()
}

// niceStep returns a 1, 2 or 5 × 10^k step that cuts span into at most
// about n pieces.
func niceStep(span float64, n int) float64 {
	if span <= 0 {
		return 1
	}
	raw := span / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// tickLabel formats tick value v for a step of step.
func tickLabel(v, step float64) string {
	dec := max(0, int(-math.Floor(math.Log10(step))))
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// timeline renders timeline.svg: latency of each delivered canary against
// its send time, lost canaries, the fault window, events and the longest
// gap.
func timeline(r *Report, in *record) string {
	off := func(t time.Time) float64 { return t.Sub(in.Start).Seconds() }
	xMax := 1.0
	for _, t := range []time.Time{in.End, in.RestoreAt, in.FaultAt, r.LastArrivalAt} {
		if !t.IsZero() {
			xMax = max(xMax, off(t))
		}
	}
	for _, e := range in.Events {
		xMax = max(xMax, off(e.At))
	}
	yMin := 0.0
	for i := range in.Canaries {
		c := &in.Canaries[i]
		xMax = max(xMax, off(c.SentAt))
		if c.delivered() {
			yMin = min(yMin, latency.Millis(c.latency()))
		}
	}
	xStep := niceStep(xMax, 12)
	xMax = math.Ceil(xMax/xStep) * xStep
	yCap := max(r.Latency.All.P99Ms*1.5, 100)
	yTop := max(min(r.MaxLatencyMs, yCap), 10)
	yStep := niceStep(yTop-yMin, 6)
	yTop = math.Ceil(yTop/yStep) * yStep
	yMin = math.Floor(yMin/yStep) * yStep
	X := func(s float64) float64 {
		return svgLeft + (svgRight-svgLeft)*min(max(s, 0), xMax)/xMax
	}
	Y := func(ms float64) float64 {
		return svgBottom - (svgBottom-svgTop)*(min(max(ms, yMin), yTop)-yMin)/(yTop-yMin)
	}

	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", svgW, svgH, svgW, svgH)
	p(`<rect width="%d" height="%d" fill="white"/>`+"\n", svgW, svgH)
	p(`<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", svgLeft,
		esc(fmt.Sprintf("Drill %s: %s → %s, %s — %s", r.Scenario, r.From, r.To, r.Precedence, r.passFail())))

	// Fault window, longest gap band, axes and grid.
	if !in.FaultAt.IsZero() {
		end := xMax
		if !in.RestoreAt.IsZero() {
			end = off(in.RestoreAt)
		}
		x0, x1 := X(off(in.FaultAt)), X(end)
		p(`<rect class="fault" x="%.1f" y="%d" width="%.1f" height="%d" fill="#fdd" stroke="none"/>`+"\n", x0, svgTop, max(x1-x0, 1), svgBottom-svgTop)
		p(`<text x="%.1f" y="%d" text-anchor="middle" fill="#c33">fault</text>`+"\n", (x0+x1)/2, svgBottom-6)
	}
	if !r.LongestGapStart.IsZero() {
		x0, x1 := X(off(r.LongestGapStart)), X(off(r.LongestGapEnd))
		p(`<rect class="gap" x="%.1f" y="%d" width="%.1f" height="%d" fill="#39f" fill-opacity="0.15"/>`+"\n", x0, svgTop, max(x1-x0, 1), svgBottom-svgTop)
		y := svgGapBracketY
		p(`<path class="gap-bracket" d="M%.1f %d V%d H%.1f V%d" fill="none" stroke="#17c" stroke-width="1.5"/>`+"\n", x0, y-6, y, x1, y-6)
		anchor, tx := "start", x1+6
		if tx > svgRight-160 {
			anchor, tx = "end", x0-6
		}
		p(`<text x="%.1f" y="%d" text-anchor="%s" fill="#17c">longest gap %.0f ms</text>`+"\n", tx, y+4, anchor, r.LongestGapMs)
	}
	for v := 0.0; v <= xMax+xStep/1e6; v += xStep {
		x := X(v)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`, x, svgTop, x, svgBottom)
		p(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#333"/>`, x, svgBottom, x, svgBottom+4)
		p(`<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, svgBottom+17, tickLabel(v, xStep))
	}
	for v := yMin; v <= yTop+yStep/1e6; v += yStep {
		y := Y(v)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, svgLeft, y, svgRight, y)
		p(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`, svgLeft-4, y, svgLeft, y)
		p(`<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", svgLeft-7, y+4, tickLabel(v, yStep))
	}
	p(`<path d="M%d %d V%d H%d" fill="none" stroke="#333"/>`+"\n", svgLeft, svgTop, svgBottom, svgRight)
	p(`<text x="%d" y="%d" text-anchor="middle">seconds since start (canaries by client send time)</text>`+"\n", (svgLeft+svgRight)/2, svgBottom+34)
	p(`<text transform="translate(18 %d) rotate(-90)" text-anchor="middle">latency, ms</text>`+"\n", (svgTop+svgBottom)/2)

	// Events.
	events := slices.Clone(in.Events)
	slices.SortStableFunc(events, func(a, b event) int { return a.At.Compare(b.At) })
	for i, e := range events {
		x := X(off(e.At))
		label := e.What
		if rs := []rune(label); len(rs) > 28 {
			label = string(rs[:27]) + "…"
		}
		anchor, tx := "start", x+3
		if tx > svgRight-170 {
			anchor, tx = "end", x-3
		}
		p(`<line class="event" x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#555" stroke-dasharray="4 3"/>`, x, svgTop, x, svgBottom)
		p(`<text x="%.1f" y="%d" text-anchor="%s" font-size="11" fill="#333">%s</text>`+"\n", tx, svgTop+12+12*(i%3), anchor, esc(label))
	}

	// Canaries; duplicated ones last and larger, so they stay visible.
	clamped := 0
	var dups strings.Builder
	for i := range in.Canaries {
		c := &in.Canaries[i]
		x := X(off(c.SentAt))
		switch {
		case c.AckedAt.IsZero():
		case len(c.Arrivals) == 0:
			y := float64(svgLostBand)
			p(`<path class="lost" d="M%.1f %.1f l6 6 m0 -6 l-6 6" stroke="#d00" stroke-width="1.5"/>`+"\n", x-3, y-3)
		default:
			lat := latency.Millis(c.latency())
			if lat > yTop {
				clamped++
			}
			if len(c.Arrivals) > 1 {
				fmt.Fprintf(&dups, `<circle class="canary dup" cx="%.1f" cy="%.1f" r="4" fill="#e68a00" stroke="#333" stroke-width="0.8"/>`+"\n", x, Y(lat))
				continue
			}
			p(`<circle class="canary" cx="%.1f" cy="%.1f" r="2.5" fill="#2463a8" fill-opacity="0.75"/>`+"\n", x, Y(lat))
		}
	}
	b.WriteString(dups.String())
	if r.Lost > 0 {
		p(`<text x="%d" y="%d" text-anchor="end" fill="#d00">lost</text>`+"\n", svgLeft-7, svgLostBand+4)
	}

	// Legend.
	lx, ly := float64(svgLeft), 44.0
	item := func(symbol, text string) {
		p(symbol, lx, ly)
		p(`<text x="%.1f" y="%.1f">%s</text>`+"\n", lx+14, ly+4, esc(text))
		lx += 14 + 6.6*float64(len([]rune(text))) + 18
	}
	item(`<circle class="legend" cx="%.1f" cy="%.1f" r="3" fill="#2463a8"/>`, "delivered")
	item(`<circle class="legend" cx="%.1f" cy="%.1f" r="4" fill="#e68a00" stroke="#333" stroke-width="0.8"/>`, "duplicated")
	item(`<path d="M%.1f %.1f m-3 -3 l6 6 m0 -6 l-6 6" stroke="#d00" stroke-width="1.5"/>`, "lost")
	item(`<rect x="%.1f" y="%.1f" transform="translate(-5 -5)" width="10" height="10" fill="#fdd"/>`, "fault")
	item(`<rect x="%.1f" y="%.1f" transform="translate(-5 -5)" width="10" height="10" fill="#39f" fill-opacity="0.3"/>`, "longest gap")
	if clamped > 0 {
		p(`<text class="clamped" x="%.1f" y="%.1f" fill="#a00">%s</text>`+"\n", lx, ly+4,
			esc(fmt.Sprintf("%d above %s ms drawn at the top edge", clamped, tickLabel(yTop, yStep))))
	}
	p("</svg>\n")
	return b.String()
}
