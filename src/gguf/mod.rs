//! GGUF container: header, metadata, tensor index, one read-only mapping per file.
//! Knows nothing of layers, experts or Gemma.
//!
//! The weights are never copied: [`Gguf::tensor_data`] returns a slice of the mapping.
//! Split models (`NAME-00001-of-00003.gguf`, with `split.*` keys) open as one model.

mod reader;
pub mod types;
mod value;
mod writer;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

pub use reader::{parse, Header, TensorInfo, DEFAULT_ALIGNMENT, MAGIC};
pub use types::{file_type_name, GgmlType};
pub use value::{type_id, Array, Metadata, Value};
pub use writer::{GgufWriter, TensorDesc};

use crate::{Error, Result};

/// One mapped file of a (possibly split) model.
#[derive(Debug)]
pub struct MappedFile {
    pub path: PathBuf,
    pub mmap: Mmap,
    /// Absolute offset of this file's data section.
    pub data_offset: u64,
    pub version: u32,
    pub alignment: u64,
}

/// An opened model: metadata of the first file, the tensors of all files.
#[derive(Debug)]
pub struct Gguf {
    files: Vec<MappedFile>,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    by_name: HashMap<String, usize>,
}

fn map(path: &Path) -> Result<Mmap> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // mmap of a directory or a device fails with "No such device"; say what is wrong instead.
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::Input(format!(
            "{} is a directory, expected a GGUF file",
            path.display()
        )));
    }
    if !meta.is_file() {
        return Err(Error::Input(format!(
            "{} is not a regular file (a device, FIFO or socket); a GGUF model must be a file",
            path.display()
        )));
    }
    // SAFETY: the file is mapped read-only; lode never writes through it. The usual mmap caveat
    // applies: another process truncating or rewriting the file while it is mapped is undefined
    // behaviour, as in every mmap-based loader (llama.cpp, candle); users must not do that.
    unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))
}

/// For `dir/NAME-00001-of-00003.gguf`, the path of split number `no` (1-based).
fn split_path(first: &Path, no: usize, count: usize) -> Option<PathBuf> {
    let name = first.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gguf")?;
    let (prefix, tail) = stem.rsplit_once("-of-")?;
    let (prefix, _) = prefix.rsplit_once('-')?;
    let width = tail.len();
    Some(first.with_file_name(format!("{prefix}-{no:0width$}-of-{count:0width$}.gguf")))
}

impl Gguf {
    /// Opens a GGUF file, or the first file of a split model, and maps every part.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let mmap = map(path)?;
        let header = parse(&mmap).map_err(|e| with_path(e, path))?;
        let count = header.metadata.u32_opt("split.count")?.unwrap_or(1) as usize;
        let no = header.metadata.u32_opt("split.no")?.unwrap_or(0) as usize;
        if count == 0 {
            return Err(Error::BadConfig(format!(
                "{}: split.count is 0",
                path.display()
            )));
        }
        if count > 1 && no != 0 {
            return Err(Error::Input(format!(
                "{} is split {} of {count}; open the first split (…-00001-of-…)",
                path.display(),
                no + 1
            )));
        }
        let mut gguf = Gguf {
            // Not `with_capacity(count)`: count comes from the file, and each split must exist.
            files: Vec::new(),
            metadata: header.metadata.clone(),
            tensors: Vec::new(),
            by_name: HashMap::new(),
        };
        gguf.add_file(path.to_path_buf(), mmap, header)?;
        for i in 1..count {
            let p = split_path(path, i + 1, count).ok_or_else(|| {
                Error::Input(format!(
                    "{} says it is split in {count} files, but its name is not NAME-00001-of-{count:05}.gguf",
                    path.display()
                ))
            })?;
            let mmap = map(&p)?;
            let h = parse(&mmap).map_err(|e| with_path(e, &p))?;
            let got = h.metadata.u32_opt("split.no")?.unwrap_or(0) as usize;
            if got != i {
                return Err(Error::BadConfig(format!(
                    "{}: split.no is {got}, expected {i}",
                    p.display()
                )));
            }
            gguf.add_file(p, mmap, h)?;
        }
        if let Some(n) = gguf.metadata.u64_opt_any("split.tensors.count") {
            if n != gguf.tensors.len() as u64 {
                return Err(Error::BadConfig(format!(
                    "split.tensors.count is {n}, but the {count} files hold {} tensors",
                    gguf.tensors.len()
                )));
            }
        }
        Ok(gguf)
    }

    fn add_file(&mut self, path: PathBuf, mmap: Mmap, h: Header) -> Result<()> {
        let file = self.files.len();
        for mut t in h.tensors {
            if self.by_name.contains_key(&t.name) {
                return Err(Error::BadConfig(format!(
                    "{}: tensor `{}` appears in two splits",
                    path.display(),
                    t.name
                )));
            }
            t.file = file;
            self.by_name.insert(t.name.clone(), self.tensors.len());
            self.tensors.push(t);
        }
        self.files.push(MappedFile {
            path,
            mmap,
            data_offset: h.data_offset,
            version: h.version,
            alignment: h.alignment,
        });
        Ok(())
    }

    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> Result<&str> {
        self.metadata.architecture()
    }

    /// Every tensor, in file order (split by split).
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.by_name.get(name).map(|&i| &self.tensors[i])
    }

    /// The tensor, or `Error::MissingTensor` naming it.
    pub fn require(&self, name: &str) -> Result<&TensorInfo> {
        self.tensor(name)
            .ok_or_else(|| Error::MissingTensor(name.to_string()))
    }

    /// The tensor's bytes, a slice of the mapping (no copy).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let f = &self.files[t.file];
        let start = (f.data_offset + t.offset) as usize;
        // The reader checked that the range lies inside the file.
        &f.mmap[start..start + t.n_bytes as usize]
    }

    /// Absolute offset of the tensor in its file (for pread and madvise).
    pub fn file_offset(&self, t: &TensorInfo) -> u64 {
        self.files[t.file].data_offset + t.offset
    }

    pub fn files(&self) -> &[MappedFile] {
        &self.files
    }

    pub fn version(&self) -> u32 {
        self.files[0].version
    }

    pub fn alignment(&self) -> u64 {
        self.files[0].alignment
    }

    /// Total bytes of tensor data.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.n_bytes).sum()
    }
}

fn with_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Format { offset, what } => Error::Format {
            offset,
            what: format!("{}: {what}", path.display()),
        },
        other => other,
    }
}

impl Metadata {
    fn u64_opt_any(&self, key: &str) -> Option<u64> {
        self.get(key)
            .and_then(Value::as_i128)
            .and_then(|v| u64::try_from(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names() {
        let p = Path::new("/m/gemma-00001-of-00003.gguf");
        assert_eq!(
            split_path(p, 2, 3).unwrap(),
            Path::new("/m/gemma-00002-of-00003.gguf")
        );
        assert_eq!(split_path(Path::new("/m/x.gguf"), 2, 3), None);
    }
}
