package kiln

import (
	"math"
	"sort"
	"strconv"
	"strings"
)

// ColumnType is the type of a column's values.
type ColumnType uint8

// The column types, numbered as the WIT declares them.
const (
	ColumnFloat64 ColumnType = 0
	ColumnInt64   ColumnType = 1
	ColumnText    ColumnType = 2
	ColumnBoolean ColumnType = 3
)

// String is the type's name, as the WIT spells it.
func (t ColumnType) String() string {
	switch t {
	case ColumnFloat64:
		return "float64"
	case ColumnInt64:
		return "int64"
	case ColumnText:
		return "text"
	default:
		return "boolean"
	}
}

// Column is a named column of one type: the slice matching Type holds the values, the
// others are nil. Valid marks missing values: nil means none is missing, otherwise
// Valid[i] == false marks row i as missing (its slot in the values is a placeholder).
type Column struct {
	Name    string
	Type    ColumnType
	Float64 []float64
	Int64   []int64
	Text    []string
	Boolean []bool
	Valid   []bool
}

// Float64Column is a float64 column with no missing values.
func Float64Column(name string, values []float64) Column {
	return Column{Name: name, Type: ColumnFloat64, Float64: values}
}

// Int64Column is an int64 column with no missing values.
func Int64Column(name string, values []int64) Column {
	return Column{Name: name, Type: ColumnInt64, Int64: values}
}

// TextColumn is a text column with no missing values.
func TextColumn(name string, values []string) Column {
	return Column{Name: name, Type: ColumnText, Text: values}
}

// BoolColumn is a boolean column with no missing values.
func BoolColumn(name string, values []bool) Column {
	return Column{Name: name, Type: ColumnBoolean, Boolean: values}
}

// WithValid is the column with the given validity mask (nil: no value missing).
func (c Column) WithValid(valid []bool) Column {
	c.Valid = valid
	return c
}

// WithName is the column renamed.
func (c Column) WithName(name string) Column {
	c.Name = name
	return c
}

// Len is the number of rows.
func (c Column) Len() int {
	switch c.Type {
	case ColumnFloat64:
		return len(c.Float64)
	case ColumnInt64:
		return len(c.Int64)
	case ColumnText:
		return len(c.Text)
	default:
		return len(c.Boolean)
	}
}

// IsValid reports whether row i holds a value (false for a row out of range).
func (c Column) IsValid(i int) bool {
	if i < 0 || i >= c.Len() {
		return false
	}
	return c.Valid == nil || (i < len(c.Valid) && c.Valid[i])
}

// MissingCount is the number of missing values.
func (c Column) MissingCount() int {
	n := 0
	for i := 0; i < c.Len(); i++ {
		if !c.IsValid(i) {
			n++
		}
	}
	return n
}

// IsNumeric reports whether the column is float64, int64 or boolean.
func (c Column) IsNumeric() bool {
	return c.Type != ColumnText
}

// Float64s returns the values as float64 (booleans are 0 and 1), NaN where a value is
// missing. A text column is an invalid-input error.
func (c Column) Float64s() ([]float64, error) {
	n := c.Len()
	out := make([]float64, n)
	switch c.Type {
	case ColumnFloat64:
		copy(out, c.Float64)
	case ColumnInt64:
		for i, v := range c.Int64 {
			out[i] = float64(v)
		}
	case ColumnBoolean:
		for i, v := range c.Boolean {
			if v {
				out[i] = 1
			}
		}
	default:
		return nil, InvalidInput("column `%s` is text, a number was expected", c.Name)
	}
	if c.Valid != nil {
		for i := range out {
			if !c.IsValid(i) {
				out[i] = math.NaN()
			}
		}
	}
	return out, nil
}

// Format returns row i as text (numbers in their shortest form, booleans as true and
// false) and whether it holds a value.
func (c Column) Format(i int) (string, bool) {
	if !c.IsValid(i) {
		return "", false
	}
	switch c.Type {
	case ColumnFloat64:
		return strconv.FormatFloat(c.Float64[i], 'f', -1, 64), true
	case ColumnInt64:
		return strconv.FormatInt(c.Int64[i], 10), true
	case ColumnText:
		return c.Text[i], true
	default:
		return strconv.FormatBool(c.Boolean[i]), true
	}
}

// Strings returns every row as text (see Format), "" where a value is missing.
func (c Column) Strings() []string {
	out := make([]string, c.Len())
	for i := range out {
		out[i], _ = c.Format(i)
	}
	return out
}

// Categories returns the column as class codes: each row's index into the sorted distinct
// labels (rows formatted as by Format). Missing rows get code -1.
func (c Column) Categories() (codes []int, labels []string) {
	text := c.Strings()
	seen := map[string]bool{}
	for i, s := range text {
		if c.IsValid(i) && !seen[s] {
			seen[s] = true
			labels = append(labels, s)
		}
	}
	sort.Strings(labels)
	index := make(map[string]int, len(labels))
	for i, l := range labels {
		index[l] = i
	}
	codes = make([]int, len(text))
	for i, s := range text {
		if c.IsValid(i) {
			codes[i] = index[s]
		} else {
			codes[i] = -1
		}
	}
	return codes, labels
}

// TakeRows is a copy of the rows at indices, in that order; an index out of range is a
// missing value.
func (c Column) TakeRows(indices []int) Column {
	out := Column{Name: c.Name, Type: c.Type}
	n := c.Len()
	var valid []bool
	if c.Valid != nil || anyOutside(indices, n) {
		valid = make([]bool, len(indices))
		for j, i := range indices {
			valid[j] = c.IsValid(i)
		}
	}
	out.Valid = valid
	switch c.Type {
	case ColumnFloat64:
		out.Float64 = pick(c.Float64, indices)
	case ColumnInt64:
		out.Int64 = pick(c.Int64, indices)
	case ColumnText:
		out.Text = pick(c.Text, indices)
	default:
		out.Boolean = pick(c.Boolean, indices)
	}
	return out
}

func anyOutside(indices []int, n int) bool {
	for _, i := range indices {
		if i < 0 || i >= n {
			return true
		}
	}
	return false
}

func pick[T any](values []T, indices []int) []T {
	out := make([]T, len(indices))
	for j, i := range indices {
		if i >= 0 && i < len(values) {
			out[j] = values[i]
		}
	}
	return out
}

// Table is named, typed columns of equal length.
type Table struct {
	Columns []Column
}

// NewTable is a table of the given columns.
func NewTable(columns ...Column) Table {
	return Table{Columns: columns}
}

// NumRows is the number of rows (that of the first column; 0 without columns).
func (t Table) NumRows() int {
	if len(t.Columns) == 0 {
		return 0
	}
	return t.Columns[0].Len()
}

// Check reports, as an invalid-input error, columns of unequal length, validity masks
// that do not fit, unknown column types and repeated names. Inputs.Table checks for you.
func (t Table) Check() error {
	rows := t.NumRows()
	seen := map[string]bool{}
	for _, c := range t.Columns {
		if c.Type > ColumnBoolean {
			return InvalidInput("column `%s` has an unknown type", c.Name)
		}
		if seen[c.Name] {
			return InvalidInput("column `%s` appears twice", c.Name)
		}
		seen[c.Name] = true
		if c.Len() != rows {
			return InvalidInput("column `%s` has %d rows, the table has %d", c.Name, c.Len(), rows)
		}
		if c.Valid != nil && len(c.Valid) != rows {
			return InvalidInput("column `%s` has %d validity flags for %d rows", c.Name, len(c.Valid), rows)
		}
	}
	return nil
}

// ColumnNames are the column names, in order.
func (t Table) ColumnNames() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// ColumnIndex is the position of the column called name, or -1.
func (t Table) ColumnIndex(name string) int {
	for i, c := range t.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// HasColumn reports whether the table has a column called name.
func (t Table) HasColumn(name string) bool {
	return t.ColumnIndex(name) >= 0
}

// Column is the column called name; a missing one is an invalid-input error naming the
// columns there are.
func (t Table) Column(name string) (Column, error) {
	if i := t.ColumnIndex(name); i >= 0 {
		return t.Columns[i], nil
	}
	if len(t.Columns) == 0 {
		return Column{}, InvalidInput("no column `%s`; the table has no columns", name)
	}
	return Column{}, InvalidInput("no column `%s`; the table has %s", name, strings.Join(t.ColumnNames(), ", "))
}

// Float64Column is the column called name as float64 values (see Column.Float64s).
func (t Table) Float64Column(name string) ([]float64, error) {
	c, err := t.Column(name)
	if err != nil {
		return nil, err
	}
	return c.Float64s()
}

// With is the table with column c added, or replacing the column of the same name.
func (t Table) With(c Column) Table {
	cols := append([]Column(nil), t.Columns...)
	if i := t.ColumnIndex(c.Name); i >= 0 {
		cols[i] = c
	} else {
		cols = append(cols, c)
	}
	return Table{Columns: cols}
}

// Without is the table without the named columns.
func (t Table) Without(names ...string) Table {
	drop := map[string]bool{}
	for _, n := range names {
		drop[n] = true
	}
	var cols []Column
	for _, c := range t.Columns {
		if !drop[c.Name] {
			cols = append(cols, c)
		}
	}
	return Table{Columns: cols}
}

// TakeRows is a copy of the rows at indices, in that order.
func (t Table) TakeRows(indices []int) Table {
	cols := make([]Column, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = c.TakeRows(indices)
	}
	return Table{Columns: cols}
}

// NumericColumns returns the named columns as float64, column-major, refusing missing
// values (impute them first) and text. No names means every numeric column except
// those in exclude. The names used are returned alongside.
func (t Table) NumericColumns(names []string, exclude ...string) ([]string, [][]float64, error) {
	if len(names) == 0 {
		skip := map[string]bool{}
		for _, n := range exclude {
			skip[n] = true
		}
		for _, c := range t.Columns {
			if c.IsNumeric() && !skip[c.Name] {
				names = append(names, c.Name)
			}
		}
		if len(names) == 0 {
			return nil, nil, InvalidInput("no numeric feature columns")
		}
	}
	out := make([][]float64, len(names))
	for i, name := range names {
		c, err := t.Column(name)
		if err != nil {
			return nil, nil, err
		}
		if m := c.MissingCount(); m > 0 {
			return nil, nil, InvalidInput("column `%s` has %d missing values; impute them first", name, m)
		}
		if out[i], err = c.Float64s(); err != nil {
			return nil, nil, err
		}
	}
	return names, out, nil
}
