package aggregate

import "slices"

// ends counts a series' distinct records touched from any stamp v on
// without reading its touches. Those are the touches from v whose
// previous touch is before v: the touches from v less the previous
// touches from v (a previous touch from v is of a touch from v). It keeps
// one of two equal forms of that, whichever is smaller for the series:
//
//   - the multiset of touch less that of the non-zero prev, as lasts (the
//     touches no touch follows, one a record) less orphans (previous
//     touches that are no touch: left by the retention, or there for a
//     moment while a late touch is added), counted from v; small when
//     each record is touched many times;
//   - prevs, the sorted non-zero previous touches, whose count from v is
//     taken from the touches' from v; small when most records are touched
//     once.
//
// Each form changes by the series' own addTouch and setPrev, in any order.
type ends struct {
	byPrevs        bool
	lasts, orphans []uint32
	prevs          []uint32
	derived        int // the size of the form kept when it was derived
}

// size is how many stamps the form kept holds.
func (e *ends) size() int { return len(e.lasts) + len(e.orphans) + len(e.prevs) }

// from counts the records of the series of touch that are touched at or
// after v.
func (e *ends) from(touch []uint32, v uint32) int {
	if e.byPrevs {
		return len(touch) - lowerBound(touch, v) - (len(e.prevs) - lowerBound(e.prevs, v))
	}
	return len(e.lasts) - lowerBound(e.lasts, v) - (len(e.orphans) - lowerBound(e.orphans, v))
}

// derive sets ends from the columns, in the smaller form, held without
// room to spare.
func (e *ends) derive(touch, prev []uint32) {
	prevs := make([]uint32, 0, len(prev))
	for _, p := range prev {
		if p != 0 {
			prevs = append(prevs, p)
		}
	}
	slices.Sort(prevs)
	var lasts, orphans []uint32
	i, j := 0, 0
	for i < len(touch) || j < len(prevs) {
		switch {
		case j == len(prevs) || i < len(touch) && touch[i] < prevs[j]:
			lasts = append(lasts, touch[i])
			i++
		case i == len(touch) || prevs[j] < touch[i]:
			orphans = append(orphans, prevs[j])
			j++
		default:
			i, j = i+1, j+1
		}
	}
	*e = ends{}
	if len(prevs) < len(lasts)+len(orphans) {
		e.byPrevs, e.prevs = true, slices.Clone(prevs)
	} else {
		e.lasts, e.orphans = slices.Clone(lasts), slices.Clone(orphans)
	}
	e.derived = e.size()
}

// addTouch counts a new touch at t whose record's previous touch is prev;
// touch and prevCol are the series' columns with it. When the form kept
// has doubled since it was derived, both are derived again and the smaller
// kept, so that a series keeps at most about twice the smaller.
func (e *ends) addTouch(t, prev uint32, touch, prevCol []uint32) {
	switch {
	case e.byPrevs && prev != 0:
		e.prevs = insertSorted(e.prevs, prev)
	case !e.byPrevs:
		e.endTouch(t)
		if prev != 0 {
			e.continueTouch(prev)
		}
	}
	if e.size() > 2*e.derived+64 {
		e.derive(touch, prevCol)
	}
}

// setPrev counts a touch's previous touch changing from old to prev (not 0).
func (e *ends) setPrev(old, prev uint32) {
	if e.byPrevs {
		if old != 0 {
			removeSorted(&e.prevs, old)
		}
		e.prevs = insertSorted(e.prevs, prev)
		return
	}
	if old != 0 {
		e.endTouch(old)
	}
	e.continueTouch(prev)
}

// endTouch adds v to the multiset touch less prev, continueTouch takes it
// away; a stamp leaves orphans before it joins lasts, and the other way.
func (e *ends) endTouch(v uint32) {
	if !removeSorted(&e.orphans, v) {
		e.lasts = insertSorted(e.lasts, v)
	}
}

func (e *ends) continueTouch(v uint32) {
	if !removeSorted(&e.lasts, v) {
		e.orphans = insertSorted(e.orphans, v)
	}
}

// removeSorted removes one v from the sorted *ts and reports whether there
// was one.
func removeSorted(ts *[]uint32, v uint32) bool {
	i := lowerBound(*ts, v)
	if i == len(*ts) || (*ts)[i] != v {
		return false
	}
	*ts = slices.Delete(*ts, i, i+1)
	return true
}
