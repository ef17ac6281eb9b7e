// class-balance checks that a classification target is usable: enough classes, no class
// too rare, no class too dominant, and no missing labels. Each is one check of the report;
// the details name the classes.
package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"wit_component/kiln"
)

type classBalance struct{}

func (classBalance) Describe() kiln.Descriptor {
	return kiln.NewDescriptor("class-balance",
		"Checks the class balance of a classification target: class count, smallest share, imbalance ratio, missing labels").
		Input("table", kiln.KindTable, "the table holding the target column").
		RequiredConfig("target", "the target column (text, int64 or boolean)").
		Config("min_fraction", "0.05", "the smallest share of the labelled rows any class may have").
		Config("max_ratio", "10", "the largest allowed ratio of the biggest class count to the smallest").
		Config("min_classes", "2", "the fewest classes allowed").
		Config("severity", "error", "severity of failed checks: error, warning or info")
}

type settings struct {
	target      string
	minFraction float64
	maxRatio    float64
	minClasses  int
	severity    kiln.Severity
}

func readConfig(cfg kiln.Config) (s settings, err error) {
	if s.target, err = cfg.Require("target"); err != nil {
		return s, err
	}
	if s.target = strings.TrimSpace(s.target); s.target == "" {
		return s, kiln.InvalidConfig("config key `target` is empty; name the target column")
	}
	if s.minFraction, err = cfg.Float64("min_fraction", 0.05); err != nil {
		return s, err
	}
	if s.minFraction < 0 || s.minFraction > 1 {
		return s, kiln.InvalidConfig("config key `min_fraction` = `%g`: must be between 0 and 1", s.minFraction)
	}
	if s.maxRatio, err = cfg.Float64("max_ratio", 10); err != nil {
		return s, err
	}
	if s.maxRatio < 1 {
		return s, kiln.InvalidConfig("config key `max_ratio` = `%g`: must be at least 1", s.maxRatio)
	}
	if s.minClasses, err = cfg.Int("min_classes", 2); err != nil {
		return s, err
	}
	if s.minClasses < 0 {
		return s, kiln.InvalidConfig("config key `min_classes` = `%d`: must not be negative", s.minClasses)
	}
	s.severity, err = cfg.Severity("severity", kiln.SeverityError)
	return s, err
}

// class is one label and how many rows carry it.
type class struct {
	label string
	count int
}

// countClasses counts the labelled rows of each class, biggest class first (ties by label).
func countClasses(col kiln.Column) (classes []class, missing int) {
	counts := map[string]int{}
	for i := 0; i < col.Len(); i++ {
		label, ok := col.Format(i)
		if !ok {
			missing++
			continue
		}
		counts[label]++
	}
	for label, n := range counts {
		classes = append(classes, class{label, n})
	}
	sort.Slice(classes, func(i, j int) bool {
		if classes[i].count != classes[j].count {
			return classes[i].count > classes[j].count
		}
		return classes[i].label < classes[j].label
	})
	return classes, missing
}

// listClasses names the classes with their counts, the first ten of them.
func listClasses(classes []class) string {
	const shown = 10
	var parts []string
	for i, c := range classes {
		if i == shown {
			parts = append(parts, fmt.Sprintf("and %d more", len(classes)-shown))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", quote(c.label), c.count))
	}
	return strings.Join(parts, ", ")
}

func quote(label string) string {
	return "`" + label + "`"
}

func num(x float64) string {
	return strconv.FormatFloat(x, 'g', 4, 64)
}

func (classBalance) Validate(in kiln.Inputs, cfg kiln.Config) ([]kiln.Check, error) {
	s, err := readConfig(cfg)
	if err != nil {
		return nil, err
	}
	table, err := in.Table("table")
	if err != nil {
		return nil, err
	}
	col, err := table.Column(s.target)
	if err != nil {
		return nil, err
	}
	if col.Type == kiln.ColumnFloat64 {
		return nil, kiln.InvalidInput("target column `%s` is float64; a class label is text, int64 or boolean", s.target)
	}

	classes, missing := countClasses(col)
	rows := col.Len()
	labelled := rows - missing
	checks := make([]kiln.Check, 0, 4)

	detail := fmt.Sprintf("%d classes, at least %d required", len(classes), s.minClasses)
	if len(classes) > 0 {
		detail = fmt.Sprintf("%d classes (%s), at least %d required", len(classes), listClasses(classes), s.minClasses)
	}
	checks = append(checks, kiln.NewCheck("classes", len(classes) >= s.minClasses, s.severity).
		WithObserved(float64(len(classes))).
		WithDetail(detail))

	if len(classes) == 0 {
		checks = append(checks,
			kiln.NewCheck("min_fraction", s.minFraction == 0, s.severity).
				WithObserved(0).
				WithDetail("no labelled rows; every class needs at least %s of them", num(s.minFraction)),
			kiln.NewCheck("max_ratio", false, s.severity).
				WithDetail("no labelled rows, no classes to compare"))
	} else {
		biggest, smallest := classes[0], classes[len(classes)-1]
		fraction := float64(smallest.count) / float64(labelled)
		checks = append(checks, kiln.NewCheck("min_fraction", fraction >= s.minFraction, s.severity).
			WithObserved(fraction).
			WithDetail("smallest class %s has %d of %d labelled rows (%s), at least %s required",
				quote(smallest.label), smallest.count, labelled, num(fraction), num(s.minFraction)))
		ratio := float64(biggest.count) / float64(smallest.count)
		checks = append(checks, kiln.NewCheck("max_ratio", ratio <= s.maxRatio, s.severity).
			WithObserved(ratio).
			WithDetail("largest class %s has %d rows, smallest %s has %d: ratio %s, at most %s allowed",
				quote(biggest.label), biggest.count, quote(smallest.label), smallest.count, num(ratio), num(s.maxRatio)))
	}

	checks = append(checks, kiln.NewCheck("missing_target", missing == 0, s.severity).
		WithObserved(float64(missing)).
		WithDetail("%d of %d rows have no `%s` label", missing, rows, s.target))

	failed := 0
	for _, c := range checks {
		if !c.Passed {
			failed++
		}
	}
	kiln.LogInfo("class balance of `%s`: %d classes over %d labelled rows; %d of %d checks failed",
		s.target, len(classes), labelled, failed, len(checks))
	return checks, nil
}

func init() { kiln.ExportValidator(classBalance{}) }
