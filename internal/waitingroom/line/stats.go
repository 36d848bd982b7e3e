package line

import "math"

// ChiSquareP is the p-value of a chi-square statistic with df degrees of
// freedom: the chance that counts drawn from the expected shares stray as
// far as this or further. It is the regularized upper incomplete gamma
// function Q(df/2, chi/2), by its series or continued fraction
// (Numerical Recipes, 6.2).
func ChiSquareP(chi float64, df int) float64 {
	if chi <= 0 || df <= 0 {
		return 1
	}
	a, x := float64(df)/2, chi/2
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		// P(a, x) by its series; Q = 1 - P.
		sum, term := 1/a, 1/a
		for n := 1; n < 1000; n++ {
			term *= x / (a + float64(n))
			sum += term
			if term < sum*1e-15 {
				break
			}
		}
		return math.Max(0, 1-sum*math.Exp(-x+a*math.Log(x)-lg))
	}
	// Q(a, x) by Lentz's continued fraction.
	const tiny = 1e-300
	b := x + 1 - a
	c, d := 1/tiny, 1/b
	h := d
	for i := 1; i < 1000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Min(1, math.Exp(-x+a*math.Log(x)-lg)*h)
}
