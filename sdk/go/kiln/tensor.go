package kiln

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Dtype is the element type of a tensor.
type Dtype uint8

// The element types, numbered as the WIT declares them.
const (
	DtypeFloat32 Dtype = 0
	DtypeFloat64 Dtype = 1
	DtypeInt32   Dtype = 2
	DtypeInt64   Dtype = 3
	DtypeUint8   Dtype = 4
	DtypeBoolean Dtype = 5
)

// String is the dtype's name, as the WIT spells it.
func (d Dtype) String() string {
	switch d {
	case DtypeFloat32:
		return "float32"
	case DtypeFloat64:
		return "float64"
	case DtypeInt32:
		return "int32"
	case DtypeInt64:
		return "int64"
	case DtypeUint8:
		return "uint8"
	case DtypeBoolean:
		return "boolean"
	default:
		return fmt.Sprintf("dtype(%d)", uint8(d))
	}
}

// Size is the number of bytes per element.
func (d Dtype) Size() int {
	switch d {
	case DtypeFloat64, DtypeInt64:
		return 8
	case DtypeFloat32, DtypeInt32:
		return 4
	default:
		return 1
	}
}

// Tensor is a dense, row-major tensor. Data holds the elements little-endian and packed
// (boolean is one byte per element, 0 or 1); its length is the product of Shape times the
// element size. Build tensors with Float64Tensor and friends, read them with Float64s and
// friends, which check the data against the shape first.
type Tensor struct {
	Dtype Dtype
	Shape []uint64
	Data  []byte
}

// Len is the number of elements the shape describes (1 for a scalar tensor of shape []).
// It is 0 when the product overflows; Check reports that.
func (t Tensor) Len() int {
	n, ok := elementCount(t.Shape)
	if !ok {
		return 0
	}
	return n
}

func elementCount(shape []uint64) (int, bool) {
	n := uint64(1)
	for _, d := range shape {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt32 {
			return 0, false
		}
		n = lo
	}
	return int(n), true
}

// Check reports, as an invalid-input error, a tensor whose data does not match its shape and dtype.
func (t Tensor) Check() error {
	if t.Dtype > DtypeBoolean {
		return InvalidInput("tensor has unknown dtype %d", uint8(t.Dtype))
	}
	n, ok := elementCount(t.Shape)
	if !ok {
		return InvalidInput("tensor of shape %v is too large", t.Shape)
	}
	if want := n * t.Dtype.Size(); want != len(t.Data) {
		return InvalidInput("tensor of shape %v and dtype %s needs %d bytes, has %d",
			t.Shape, t.Dtype, want, len(t.Data))
	}
	return nil
}

// Float64s returns the elements as float64, whatever the dtype (booleans are 0 and 1).
func (t Tensor) Float64s() ([]float64, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	out := make([]float64, t.Len())
	d := t.Data
	le := binary.LittleEndian
	switch t.Dtype {
	case DtypeFloat64:
		for i := range out {
			out[i] = math.Float64frombits(le.Uint64(d[8*i:]))
		}
	case DtypeFloat32:
		for i := range out {
			out[i] = float64(math.Float32frombits(le.Uint32(d[4*i:])))
		}
	case DtypeInt64:
		for i := range out {
			out[i] = float64(int64(le.Uint64(d[8*i:])))
		}
	case DtypeInt32:
		for i := range out {
			out[i] = float64(int32(le.Uint32(d[4*i:])))
		}
	default:
		for i := range out {
			out[i] = float64(d[i])
		}
	}
	return out, nil
}

// Float32s returns the elements as float32, whatever the dtype (float64 is rounded).
func (t Tensor) Float32s() ([]float32, error) {
	if t.Dtype == DtypeFloat32 {
		if err := t.Check(); err != nil {
			return nil, err
		}
		out := make([]float32, t.Len())
		for i := range out {
			out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
		}
		return out, nil
	}
	wide, err := t.Float64s()
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(wide))
	for i, v := range wide {
		out[i] = float32(v)
	}
	return out, nil
}

// Int64s returns the elements of an integer or boolean tensor as int64; a float tensor is
// an invalid-input error.
func (t Tensor) Int64s() ([]int64, error) {
	if t.Dtype == DtypeFloat32 || t.Dtype == DtypeFloat64 {
		return nil, InvalidInput("tensor is %s, integers were expected", t.Dtype)
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	out := make([]int64, t.Len())
	d := t.Data
	le := binary.LittleEndian
	switch t.Dtype {
	case DtypeInt64:
		for i := range out {
			out[i] = int64(le.Uint64(d[8*i:]))
		}
	case DtypeInt32:
		for i := range out {
			out[i] = int64(int32(le.Uint32(d[4*i:])))
		}
	default:
		for i := range out {
			out[i] = int64(d[i])
		}
	}
	return out, nil
}

// Bools returns the elements of a boolean or uint8 tensor (non-zero is true).
func (t Tensor) Bools() ([]bool, error) {
	if t.Dtype != DtypeBoolean && t.Dtype != DtypeUint8 {
		return nil, InvalidInput("tensor is %s, booleans were expected", t.Dtype)
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	out := make([]bool, len(t.Data))
	for i, b := range t.Data {
		out[i] = b != 0
	}
	return out, nil
}

// Matrix returns a 2-D tensor of shape [rows, columns] as float64 rows.
func (t Tensor) Matrix() ([][]float64, error) {
	if len(t.Shape) != 2 {
		return nil, InvalidInput("a matrix has shape [rows, columns]; this tensor has %v", t.Shape)
	}
	flat, err := t.Float64s()
	if err != nil {
		return nil, err
	}
	rows, cols := int(t.Shape[0]), int(t.Shape[1])
	out := make([][]float64, rows)
	for r := range out {
		out[r] = flat[r*cols : (r+1)*cols : (r+1)*cols]
	}
	return out, nil
}

func shapeOr(shape []uint64, n int) []uint64 {
	if shape == nil {
		return []uint64{uint64(n)}
	}
	return shape
}

// Float64Tensor is a float64 tensor; a nil shape means one dimension of len(values).
func Float64Tensor(shape []uint64, values []float64) Tensor {
	data := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(data[8*i:], math.Float64bits(v))
	}
	return Tensor{Dtype: DtypeFloat64, Shape: shapeOr(shape, len(values)), Data: data}
}

// Float32Tensor is a float32 tensor; a nil shape means one dimension of len(values).
func Float32Tensor(shape []uint64, values []float32) Tensor {
	data := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
	}
	return Tensor{Dtype: DtypeFloat32, Shape: shapeOr(shape, len(values)), Data: data}
}

// Int64Tensor is an int64 tensor; a nil shape means one dimension of len(values).
func Int64Tensor(shape []uint64, values []int64) Tensor {
	data := make([]byte, 8*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint64(data[8*i:], uint64(v))
	}
	return Tensor{Dtype: DtypeInt64, Shape: shapeOr(shape, len(values)), Data: data}
}

// Int32Tensor is an int32 tensor; a nil shape means one dimension of len(values).
func Int32Tensor(shape []uint64, values []int32) Tensor {
	data := make([]byte, 4*len(values))
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[4*i:], uint32(v))
	}
	return Tensor{Dtype: DtypeInt32, Shape: shapeOr(shape, len(values)), Data: data}
}

// Uint8Tensor is a uint8 tensor; a nil shape means one dimension of len(values).
func Uint8Tensor(shape []uint64, values []uint8) Tensor {
	data := append([]byte(nil), values...)
	return Tensor{Dtype: DtypeUint8, Shape: shapeOr(shape, len(values)), Data: data}
}

// BoolTensor is a boolean tensor; a nil shape means one dimension of len(values).
func BoolTensor(shape []uint64, values []bool) Tensor {
	data := make([]byte, len(values))
	for i, v := range values {
		if v {
			data[i] = 1
		}
	}
	return Tensor{Dtype: DtypeBoolean, Shape: shapeOr(shape, len(values)), Data: data}
}

// MatrixTensor is a float64 tensor of shape [len(rows), columns] from equal-length rows.
func MatrixTensor(rows [][]float64) (Tensor, error) {
	cols := 0
	if len(rows) > 0 {
		cols = len(rows[0])
	}
	flat := make([]float64, 0, len(rows)*cols)
	for i, r := range rows {
		if len(r) != cols {
			return Tensor{}, Internal("matrix row %d has %d values, row 0 has %d", i, len(r), cols)
		}
		flat = append(flat, r...)
	}
	return Float64Tensor([]uint64{uint64(len(rows)), uint64(cols)}, flat), nil
}
