package payload

import (
	"math"
	"slices"
)

// A menu is a curve: F(x), the most the optional costs of a node's
// members (its named properties' and prefixItems positions', and what
// its short keys cost) add up to within x of its bytes. Each member is
// an item of some cost that needs some bytes, and the best the items
// can do in x bytes is at most a fractional knapsack's: take them by
// cost per byte, the last in part. So F is concave and piecewise
// linear: segments of falling density (cost per byte) and length
// (bytes). Only F up to MaxBytes matters.
type curve []seg

type seg struct{ density, length float64 }

// shortKeys is how many members of an object can have a key of one byte
// or none: "" and the printable ASCII characters but " and \ (which
// take an escape). Every other key takes two bytes or more.
const shortKeys = 94

// curveCap bounds a curve's segments: past it, neighbours merge into
// one at the higher density (F only grows, so it still bounds).
const curveCap = 32

// item is the curve of one member of the given cost and bytes.
func item(cost float64, bytes int) curve {
	if cost <= 0 {
		return nil
	}
	return curve{{cost / float64(bytes), float64(bytes)}}
}

// at is F(x).
func (c curve) at(x float64) float64 {
	t := 0.0
	for _, sg := range c {
		if x <= 0 {
			break
		}
		l := min(sg.length, x)
		t += sg.density * l
		x -= l
	}
	return min(t, costCap)
}

// union is the curve of two sets of members that share none: their
// items in one knapsack, the segments merged by density.
func union(x, y curve) curve {
	if len(x) == 0 || len(y) == 0 {
		return append(slices.Clone(x), y...)
	}
	out := make(curve, 0, len(x)+len(y))
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		if j == len(y) || (i < len(x) && x[i].density >= y[j].density) {
			out = append(out, x[i])
			i++
		} else {
			out = append(out, y[j])
			j++
		}
	}
	return out.trim()
}

// sum is F_x + F_y point by point: a bound for two sets of members that
// may share some (two schemas at one node, each pricing its properties).
func sum(x, y curve) curve {
	if len(x) == 0 || len(y) == 0 {
		return append(slices.Clone(x), y...)
	}
	out := make(curve, 0, len(x)+len(y))
	i, j := 0, 0
	xl, yl := x[0].length, y[0].length // what is left of the current segments
	for i < len(x) && j < len(y) {
		l := min(xl, yl)
		out = append(out, seg{x[i].density + y[j].density, l})
		if xl -= l; xl == 0 {
			if i++; i < len(x) {
				xl = x[i].length
			}
		}
		if yl -= l; yl == 0 {
			if j++; j < len(y) {
				yl = y[j].length
			}
		}
	}
	if i < len(x) {
		out = append(out, seg{x[i].density, xl})
		out = append(out, x[i+1:]...)
	}
	if j < len(y) {
		out = append(out, seg{y[j].density, yl})
		out = append(out, y[j+1:]...)
	}
	return out.trim()
}

// times is the curve of n copies of every member: the same densities,
// n times the lengths.
func (c curve) times(n float64) curve {
	out := make(curve, len(c))
	for i, sg := range c {
		out[i] = seg{sg.density, sg.length * n}
	}
	return out.trim()
}

// trim cuts c at MaxBytes and merges neighbours past curveCap, where
// the merge raises F the least.
func (c curve) trim() curve {
	room := float64(MaxBytes)
	for i, sg := range c {
		if sg.length >= room {
			c[i].length = room
			c = c[:i+1]
			break
		}
		room -= sg.length
	}
	for len(c) > curveCap {
		best, cost := 0, math.Inf(1)
		for i := 0; i+1 < len(c); i++ {
			if d := c[i+1].length * (c[i].density - c[i+1].density); d < cost {
				best, cost = i, d
			}
		}
		c[best].length += c[best+1].length
		c = slices.Delete(c, best+1, best+2)
	}
	return c
}

// perByte is the most a child costs per byte of its node when it may
// come many times (array elements, keys no property names): its a + r·b
// + its menu, over b plus overhead bytes of syntax only the node pays
// for (a comma; a key, its quotes and colon). For a given part of the
// menu the ratio is largest at the least b or as b grows, and the best
// part takes segments while each raises it.
func perByte(c bound, overhead int) float64 {
	num, den := c.a+c.r, float64(1+overhead)
	ratio := num / den
	for _, sg := range c.menu {
		if sg.density+c.r <= ratio {
			break
		}
		num += (sg.density + c.r) * sg.length
		den += sg.length
		ratio = num / den
	}
	return max(c.r, ratio)
}
