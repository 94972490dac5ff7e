//! A safe reader and a small writer for the pickles inside PyTorch checkpoints.
//!
//! The reader is a data-only pickle machine: it never calls anything. Every `GLOBAL` must be
//! one of the few a state-dict checkpoint needs ([`Global`]), else reading stops with
//! [`PickleError::Refused`] naming it; calls (`REDUCE`) of the allowed globals are interpreted
//! as the data constructors they are (a tensor from a storage, an empty `OrderedDict`, a numpy
//! array from its raw bytes). Containers are shared, not copied, when the memo is read, and the
//! bytes made by `_codecs.encode` are budgeted, so a small file cannot make a large heap.
//!
//! candle-core's pickle reader was not used: it accepts every global (it turns
//! `collections.defaultdict` into a dict and keeps unknown ones as opaque objects), it has no
//! numpy arrays, and its memo copies whole objects on every read.
//!
//! The writer emits protocol 2, the protocol of `torch.save`: dicts, strings and tensors
//! (`torch._utils._rebuild_tensor_v2` over a persistent storage id), which
//! `torch.load(weights_only=True)` accepts.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Why a pickle was not read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PickleError {
    /// A global outside the allow-list (`module.name`); nothing was called.
    #[error("refused global '{0}': a checkpoint needs only torch tensor, numpy array and OrderedDict globals (nothing was executed)")]
    Refused(String),
    /// Malformed or unsupported content, with the byte offset.
    #[error("at byte {offset}: {message}")]
    Malformed {
        /// Offset of the opcode in the pickle.
        offset: usize,
        /// What is wrong.
        message: String,
    },
}

/// The globals a PyTorch state-dict checkpoint may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    /// `torch._utils._rebuild_tensor_v2`: a tensor view of a storage.
    RebuildTensor,
    /// `torch._utils._rebuild_parameter`: an `nn.Parameter` around a tensor.
    RebuildParameter,
    /// `torch.<T>Storage`: the element type of a storage.
    Storage(DType),
    /// `collections.OrderedDict`.
    OrderedDict,
    /// `numpy.core.multiarray._reconstruct` (`numpy._core` in numpy 2).
    NumpyReconstruct,
    /// `numpy.ndarray`, the class passed to `_reconstruct`.
    NumpyNdarray,
    /// `numpy.dtype`.
    NumpyDtype,
    /// `_codecs.encode`: how protocol 2 writes `bytes` (a latin-1 string).
    CodecsEncode,
}

/// Element types of tensors and arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 16-bit float.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit integer.
    I64,
    /// 32-bit integer.
    I32,
    /// 8-bit unsigned integer.
    U8,
    /// bool (one byte).
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 => 2,
            DType::U8 | DType::Bool => 1,
        }
    }

    /// PyTorch's storage class name.
    pub fn storage_name(self) -> &'static str {
        match self {
            DType::F32 => "FloatStorage",
            DType::F64 => "DoubleStorage",
            DType::F16 => "HalfStorage",
            DType::BF16 => "BFloat16Storage",
            DType::I64 => "LongStorage",
            DType::I32 => "IntStorage",
            DType::U8 => "ByteStorage",
            DType::Bool => "BoolStorage",
        }
    }

    fn from_numpy(code: &str) -> Option<DType> {
        Some(match code {
            "f8" | "float64" => DType::F64,
            "f4" | "float32" => DType::F32,
            "f2" | "float16" => DType::F16,
            "i8" | "int64" => DType::I64,
            "i4" | "int32" => DType::I32,
            "u1" | "uint8" => DType::U8,
            "b1" | "bool" => DType::Bool,
            _ => return None,
        })
    }
}

fn global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct") => Global::NumpyReconstruct,
        ("numpy", "ndarray") => Global::NumpyNdarray,
        ("numpy", "dtype") => Global::NumpyDtype,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("torch", s) => Global::Storage(
            [
                DType::F32,
                DType::F64,
                DType::F16,
                DType::BF16,
                DType::I64,
                DType::I32,
                DType::U8,
                DType::Bool,
            ]
            .into_iter()
            .find(|d| d.storage_name() == s)?,
        ),
        _ => return None,
    })
}

/// A storage named by a persistent id: `('storage', torch.<T>Storage, key, location, numel)`.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    /// Element type.
    pub dtype: DType,
    /// The record name inside the archive (`data/<key>`).
    pub key: String,
    /// Elements in the storage.
    pub numel: usize,
}

/// A tensor: a strided view of a storage.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    /// The storage.
    pub storage: StorageRef,
    /// Offset in elements.
    pub offset: usize,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides in elements.
    pub stride: Vec<usize>,
}

/// A numpy array with its raw little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct NdArray {
    /// Element type.
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Column-major (Fortran) order.
    pub fortran: bool,
    /// Raw data.
    pub data: Vec<u8>,
}

/// A value of the data-only pickle machine.
#[derive(Clone, Debug)]
pub enum Value {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(Rc<str>),
    /// A bytes object.
    Bytes(Rc<Vec<u8>>),
    /// A tuple.
    Tuple(Rc<Vec<Value>>),
    /// A list (shared, mutable while reading).
    List(Rc<RefCell<Vec<Value>>>),
    /// A dict in insertion order (shared, mutable while reading).
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    /// An allowed global.
    Global(Global),
    /// A storage.
    Storage(Rc<StorageRef>),
    /// A tensor.
    Tensor(Rc<TensorRef>),
    /// A numpy dtype (with its byte order once built).
    Dtype(Rc<RefCell<(DType, char)>>),
    /// A numpy array (filled by `BUILD`).
    Array(Rc<RefCell<Option<NdArray>>>),
    /// The stack mark.
    Mark,
}

impl Value {
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The Python type's name, for errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
            Value::Dtype(_) => "numpy dtype",
            Value::Array(_) => "numpy array",
            Value::Mark => "mark",
        }
    }
}

/// The largest pickle read (the tensors' data live outside it) [bytes].
pub const MAX_PICKLE_BYTES: usize = 256 << 20;

/// Reads one pickle from the start of `bytes`; returns the value and the bytes consumed.
pub fn read(bytes: &[u8]) -> Result<(Value, usize), PickleError> {
    if bytes.len() > MAX_PICKLE_BYTES {
        return Err(PickleError::Malformed {
            offset: 0,
            message: format!(
                "pickle of {} bytes is larger than the {MAX_PICKLE_BYTES} read",
                bytes.len()
            ),
        });
    }
    let mut m = Machine {
        bytes,
        pos: 0,
        op_at: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        budget: 4 * bytes.len() + 4096,
    };
    let v = m.run()?;
    Ok((v, m.pos))
}

struct Machine<'a> {
    bytes: &'a [u8],
    pos: usize,
    op_at: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    /// Bytes `_codecs.encode` may still make.
    budget: usize,
}

impl Machine<'_> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError::Malformed {
            offset: self.op_at,
            message: message.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        if self.bytes.len() - self.pos < n {
            return self.err("truncated pickle");
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        Ok(self.take(N)?.try_into().expect("length"))
    }

    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return self.err("unterminated text line");
        };
        let s = String::from_utf8_lossy(&rest[..end]).into_owned();
        self.pos += end + 1;
        Ok(s)
    }

    fn utf8(&mut self, n: usize) -> Result<Value, PickleError> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(Value::Str(s.into())),
            Err(_) => self.err("string is not UTF-8"),
        }
    }

    fn bytes_value(&mut self, n: usize) -> Result<Value, PickleError> {
        Ok(Value::Bytes(Rc::new(self.take(n)?.to_vec())))
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        match self.stack.pop() {
            Some(Value::Mark) | None => self.err("stack underflow"),
            Some(v) => Ok(v),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let Some(at) = self.stack.iter().rposition(|v| matches!(v, Value::Mark)) else {
            return self.err("no mark on the stack");
        };
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        match self.stack.last_mut() {
            Some(v) => Ok(v),
            None => Err(PickleError::Malformed {
                offset: self.op_at,
                message: "empty stack".into(),
            }),
        }
    }

    fn len(&mut self, n: u64) -> Result<usize, PickleError> {
        usize::try_from(n).or_else(|_| self.err("length out of range"))
    }

    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.op_at = self.pos;
            let op = self.u8()?;
            match op {
                0x80 => {
                    let p = self.u8()?;
                    if p > 5 {
                        return self.err(format!("pickle protocol {p} is not known"));
                    }
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint
                }
                b'.' => return self.pop(),
                b'(' => self.stack.push(Value::Mark),
                b'0' => {
                    self.stack.pop();
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v as i64));
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        return self.err("integer wider than 64 bits");
                    }
                    let mut buf = if b.last().is_some_and(|x| x & 0x80 != 0) {
                        [0xff; 8]
                    } else {
                        [0; 8]
                    };
                    buf[..n].copy_from_slice(b);
                    self.stack.push(Value::Int(i64::from_le_bytes(buf)));
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = u32::from_le_bytes(self.le()?) as u64;
                    let n = self.len(n)?;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le()?);
                    let n = self.len(n)?;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                b'B' => {
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let v = self.bytes_value(n)?;
                    self.stack.push(v);
                }
                b'C' => {
                    let n = self.u8()? as usize;
                    let v = self.bytes_value(n)?;
                    self.stack.push(v);
                }
                0x8e => {
                    let n = u64::from_le_bytes(self.le()?);
                    let n = self.len(n)?;
                    let v = self.bytes_value(n)?;
                    self.stack.push(v);
                }
                b'T' => {
                    // BINSTRING (protocol 1 str): bytes in latin-1.
                    let n = u32::from_le_bytes(self.le()?) as usize;
                    let s: String = self.take(n)?.iter().map(|&b| b as char).collect();
                    self.stack.push(Value::Str(s.into()));
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let s: String = self.take(n)?.iter().map(|&b| b as char).collect();
                    self.stack.push(Value::Str(s.into()));
                }
                b')' => self.stack.push(Value::Tuple(Rc::new(Vec::new()))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n
                        || self.stack[self.stack.len() - n..]
                            .iter()
                            .any(|v| matches!(v, Value::Mark))
                    {
                        return self.err("stack underflow");
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(Rc::new(items)));
                }
                b']' => self.stack.push(Value::List(Rc::new(RefCell::new(Vec::new())))),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(Rc::new(RefCell::new(items))));
                }
                b'}' => self.stack.push(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.stack.push(Value::Dict(Rc::new(RefCell::new(pairs))));
                }
                b'a' => {
                    let v = self.pop()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().push(v),
                        other => {
                            let k = other.kind();
                            return self.err(format!("APPEND to a {k}"));
                        }
                    }
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    match self.top()? {
                        Value::List(l) => l.borrow_mut().extend(items),
                        other => {
                            let k = other.kind();
                            return self.err(format!("APPENDS to a {k}"));
                        }
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![(k, v)])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = self.pairs(items)?;
                    self.set_items(pairs)?;
                }
                b'q' => {
                    let id = self.u8()? as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(id, v);
                }
                b'r' => {
                    let id = u32::from_le_bytes(self.le()?);
                    let v = self.top()?.clone();
                    self.memo.insert(id, v);
                }
                0x94 => {
                    let id = self.memo.len() as u32;
                    let v = self.top()?.clone();
                    self.memo.insert(id, v);
                }
                b'h' => {
                    let id = self.u8()? as u32;
                    self.get(id)?;
                }
                b'j' => {
                    let id = u32::from_le_bytes(self.le()?);
                    self.get(id)?;
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push_global(&module, &name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module.as_str(), name.as_str()) {
                        (Some(m), Some(n)) => {
                            let (m, n) = (m.to_string(), n.to_string());
                            self.push_global(&m, &n)?
                        }
                        _ => return self.err("STACK_GLOBAL needs two strings"),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?.clone();
                    self.build(target, state)?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.persistent(pid)?;
                    self.stack.push(v);
                }
                other => {
                    return self.err(format!(
                        "opcode 0x{other:02x} ('{}') is not read (it builds objects a checkpoint does not need)",
                        other as char
                    ))
                }
            }
        }
    }

    fn get(&mut self, id: u32) -> Result<(), PickleError> {
        match self.memo.get(&id) {
            Some(v) => {
                let v = v.clone();
                self.stack.push(v);
                Ok(())
            }
            None => self.err(format!("memo entry {id} is missing")),
        }
    }

    fn pairs(&self, items: Vec<Value>) -> Result<Vec<(Value, Value)>, PickleError> {
        if items.len() % 2 != 0 {
            return self.err("odd number of items for a dict");
        }
        let mut it = items.into_iter();
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
        Ok(out)
    }

    fn set_items(&mut self, pairs: Vec<(Value, Value)>) -> Result<(), PickleError> {
        match self.top()? {
            Value::Dict(d) => {
                let mut d = d.borrow_mut();
                for (k, v) in pairs {
                    match d.iter_mut().find(|(old, _)| same_key(old, &k)) {
                        Some(slot) => slot.1 = v,
                        None => d.push((k, v)),
                    }
                }
                Ok(())
            }
            other => {
                let k = other.kind();
                self.err(format!("SETITEM on a {k}"))
            }
        }
    }

    fn push_global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        match global(module, name) {
            Some(g) => {
                self.stack.push(Value::Global(g));
                Ok(())
            }
            None => Err(PickleError::Refused(format!("{module}.{name}"))),
        }
    }

    fn reduce(&mut self, callable: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Global(g) = callable else {
            return self.err(format!(
                "call of a {} (only allowed globals are called)",
                callable.kind()
            ));
        };
        let Value::Tuple(args) = args else {
            return self.err("call arguments are not a tuple");
        };
        let args = args.as_slice();
        match g {
            Global::OrderedDict if args.is_empty() => Ok(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
            Global::RebuildTensor if args.len() >= 4 => {
                let Value::Storage(storage) = &args[0] else {
                    return self.err("_rebuild_tensor_v2: the first argument is not a storage");
                };
                let offset = self.usize_of(&args[1], "storage offset")?;
                let shape = self.usizes(&args[2], "size")?;
                let stride = self.usizes(&args[3], "stride")?;
                if shape.len() != stride.len() {
                    return self.err("_rebuild_tensor_v2: size and stride differ in length");
                }
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage: (**storage).clone(),
                    offset,
                    shape,
                    stride,
                })))
            }
            Global::RebuildParameter if !args.is_empty() => match &args[0] {
                t @ Value::Tensor(_) => Ok(t.clone()),
                _ => self.err("_rebuild_parameter: the first argument is not a tensor"),
            },
            Global::CodecsEncode if args.len() == 2 => {
                let (Some(s), Some(enc)) = (args[0].as_str(), args[1].as_str()) else {
                    return self.err("_codecs.encode needs a string and an encoding");
                };
                if enc != "latin1" && enc != "latin-1" {
                    return self.err(format!("_codecs.encode with encoding '{enc}' (only latin1)"));
                }
                let n = s.chars().count();
                if n > self.budget {
                    return self.err("encoded bytes exceed the size budget of this pickle");
                }
                self.budget -= n;
                let mut out = Vec::with_capacity(n);
                for c in s.chars() {
                    match u8::try_from(c as u32) {
                        Ok(b) => out.push(b),
                        Err(_) => return self.err("_codecs.encode: character outside latin-1"),
                    }
                }
                Ok(Value::Bytes(Rc::new(out)))
            }
            Global::NumpyReconstruct if args.len() == 3 => match &args[0] {
                Value::Global(Global::NumpyNdarray) => Ok(Value::Array(Rc::new(RefCell::new(None)))),
                _ => self.err("_reconstruct of something other than numpy.ndarray"),
            },
            Global::NumpyDtype if !args.is_empty() => {
                let Some(code) = args[0].as_str() else {
                    return self.err("numpy.dtype needs a type code");
                };
                match DType::from_numpy(code) {
                    Some(d) => Ok(Value::Dtype(Rc::new(RefCell::new((d, '<'))))),
                    None => self.err(format!("numpy dtype '{code}' is not read")),
                }
            }
            g => self.err(format!("call of {g:?} with {} arguments", args.len())),
        }
    }

    fn build(&mut self, target: Value, state: Value) -> Result<(), PickleError> {
        match (&target, &state) {
            (Value::Dtype(d), Value::Tuple(s)) => {
                if let Some(order) = s.get(1).and_then(Value::as_str) {
                    let c = order.chars().next().unwrap_or('|');
                    d.borrow_mut().1 = c;
                }
                Ok(())
            }
            (Value::Array(a), Value::Tuple(s)) if s.len() == 5 => {
                let shape = self.usizes(&s[1], "numpy shape")?;
                let Value::Dtype(d) = &s[2] else {
                    return self.err("numpy array state without a dtype");
                };
                let (dtype, order) = *d.borrow();
                if order == '>' {
                    return self.err("big-endian numpy arrays are not read");
                }
                let fortran = matches!(s[3], Value::Bool(true));
                let Value::Bytes(data) = &s[4] else {
                    return self.err("numpy array data is not bytes (object arrays are not read)");
                };
                let n: usize = shape.iter().product();
                if data.len() != n * dtype.size() {
                    return self.err(format!(
                        "numpy array of shape {shape:?} has {} data bytes, expected {}",
                        data.len(),
                        n * dtype.size()
                    ));
                }
                *a.borrow_mut() = Some(NdArray {
                    dtype,
                    shape,
                    fortran,
                    data: (**data).clone(),
                });
                Ok(())
            }
            // Attributes of a dict subclass (a state dict's `_metadata`): not items, and not
            // needed; they were read (and their globals checked) like everything else.
            (Value::Dict(_), Value::Dict(_)) => Ok(()),
            _ => self.err(format!("BUILD of a {} with a {}", target.kind(), state.kind())),
        }
    }

    fn persistent(&mut self, pid: Value) -> Result<Value, PickleError> {
        let Value::Tuple(t) = pid else {
            return self.err("persistent id is not a tuple");
        };
        if t.len() < 5 || t[0].as_str() != Some("storage") {
            return self.err("persistent id is not ('storage', type, key, location, numel)");
        }
        let Value::Global(Global::Storage(dtype)) = t[1] else {
            return self.err("persistent id without a storage type");
        };
        let Some(key) = t[2].as_str() else {
            return self.err("storage key is not a string");
        };
        let numel = self.usize_of(&t[4], "storage size")?;
        Ok(Value::Storage(Rc::new(StorageRef {
            dtype,
            key: key.to_string(),
            numel,
        })))
    }

    fn usize_of(&self, v: &Value, what: &str) -> Result<usize, PickleError> {
        match v {
            Value::Int(i) if *i >= 0 => Ok(*i as usize),
            _ => self.err(format!("{what} is not a non-negative integer")),
        }
    }

    fn usizes(&self, v: &Value, what: &str) -> Result<Vec<usize>, PickleError> {
        match v {
            Value::Tuple(t) => t.iter().map(|x| self.usize_of(x, what)).collect(),
            _ => self.err(format!("{what} is not a tuple")),
        }
    }
}

fn same_key(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        _ => false,
    }
}

/// What the writer writes.
#[derive(Clone, Debug)]
pub enum Out {
    /// A string.
    Str(String),
    /// A plain dict (string keys).
    Dict(Vec<(String, Out)>),
    /// A `collections.OrderedDict` (string keys).
    OrderedDict(Vec<(String, Out)>),
    /// A contiguous tensor over storage `key` of `dtype` with `shape`.
    Tensor {
        /// The storage record name.
        key: String,
        /// Element type.
        dtype: DType,
        /// Shape (row-major, contiguous, offset 0).
        shape: Vec<usize>,
    },
}

/// Writes `value` as a protocol 2 pickle.
pub fn write(value: &Out) -> Vec<u8> {
    let mut w = Writer { out: vec![0x80, 2] };
    w.value(value);
    w.out.push(b'.');
    w.out
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
    }

    fn int(&mut self, v: usize) {
        if v < 256 {
            self.out.extend([b'K', v as u8]);
        } else if v < 65536 {
            self.out.push(b'M');
            self.out.extend((v as u16).to_le_bytes());
        } else if v <= i32::MAX as usize {
            self.out.push(b'J');
            self.out.extend((v as i32).to_le_bytes());
        } else {
            self.out.extend([0x8a, 8]);
            self.out.extend((v as i64).to_le_bytes());
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend(name.as_bytes());
        self.out.push(b'\n');
    }

    fn tuple(&mut self, items: &[usize]) {
        self.out.push(b'(');
        for &i in items {
            self.int(i);
        }
        self.out.push(b't');
    }

    fn items(&mut self, items: &[(String, Out)]) {
        if items.is_empty() {
            return;
        }
        self.out.push(b'(');
        for (k, v) in items {
            self.str(k);
            self.value(v);
        }
        self.out.push(b'u');
    }

    fn value(&mut self, v: &Out) {
        match v {
            Out::Str(s) => self.str(s),
            Out::Dict(items) => {
                self.out.push(b'}');
                self.items(items);
            }
            Out::OrderedDict(items) => {
                self.global("collections", "OrderedDict");
                self.out.extend([b')', b'R']);
                self.items(items);
            }
            Out::Tensor { key, dtype, shape } => {
                self.global("torch._utils", "_rebuild_tensor_v2");
                self.out.push(b'(');
                // the persistent id
                self.out.push(b'(');
                self.str("storage");
                self.global("torch", dtype.storage_name());
                self.str(key);
                self.str("cpu");
                self.int(shape.iter().product());
                self.out.extend([b't', b'Q']);
                self.int(0);
                self.tuple(shape);
                let mut stride = vec![1usize; shape.len()];
                for i in (0..shape.len().saturating_sub(1)).rev() {
                    stride[i] = stride[i + 1] * shape[i + 1];
                }
                self.tuple(&stride);
                self.out.push(0x89); // requires_grad = False
                self.global("collections", "OrderedDict");
                self.out.extend([b')', b'R']); // backward hooks
                self.out.extend([b't', b'R']);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_tensors_read_back() {
        let v = Out::Dict(vec![(
            "net".into(),
            Out::OrderedDict(vec![(
                "w".into(),
                Out::Tensor {
                    key: "0".into(),
                    dtype: DType::F32,
                    shape: vec![3, 70000],
                },
            )]),
        )]);
        let bytes = write(&v);
        let (value, used) = read(&bytes).unwrap();
        assert_eq!(used, bytes.len());
        let Value::Dict(d) = value else { panic!("not a dict") };
        let d = d.borrow();
        let Value::Dict(net) = &d[0].1 else {
            panic!("not a dict")
        };
        let Value::Tensor(t) = &net.borrow()[0].1 else {
            panic!("not a tensor")
        };
        assert_eq!(t.shape, vec![3, 70000]);
        assert_eq!(t.stride, vec![70000, 1]);
        assert_eq!(t.storage.numel, 210000);
        assert_eq!(t.storage.dtype, DType::F32);
    }

    #[test]
    fn attributes_of_a_state_dict_are_not_items() {
        // OrderedDict() with an item, then BUILD with {'_metadata': {}} (what
        // `module.state_dict()` pickles).
        let mut p = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\n)R");
        p.extend(b"X\x01\x00\x00\x00aK\x01s");
        p.extend(b"}X\x09\x00\x00\x00_metadata}sb.");
        let (v, _) = read(&p).unwrap();
        let Value::Dict(d) = v else { panic!("not a dict") };
        let d = d.borrow();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0.as_str(), Some("a"));
    }

    #[test]
    fn unknown_globals_are_refused_by_name() {
        let mut p = vec![0x80, 2];
        p.extend(b"cposix\nsystem\n");
        p.extend(b"X\x02\x00\x00\x00lsR.");
        assert_eq!(read(&p).unwrap_err(), PickleError::Refused("posix.system".into()));
        let mut q = vec![0x80, 4];
        q.extend(b"\x8c\x08builtins\x8c\x04eval\x93");
        assert_eq!(read(&q).unwrap_err(), PickleError::Refused("builtins.eval".into()));
    }

    #[test]
    fn malformed_pickles_are_errors() {
        for bad in [
            &b"\x80\x02"[..],
            b"\x80\x02t.",
            b"\x80\x02h\x05.",
            b"\x80\x02X\xff\xff\x00\x00ab",
            b".",
        ] {
            assert!(matches!(read(bad), Err(PickleError::Malformed { .. })), "{bad:?}");
        }
    }
}
