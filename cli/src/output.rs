//! A command's output file: written as `<name>.part` and renamed when complete, so a partial
//! file never takes the name; or standard output (no path, or `-`).

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use crate::CliError;

pub struct Output {
    /// (where it is written, the name it takes when complete); None for standard output.
    file: Option<(PathBuf, PathBuf)>,
    writer: Box<dyn Write>,
}

impl Output {
    pub fn create(path: Option<&Path>) -> Result<Output, CliError> {
        match path.filter(|p| p.as_os_str() != "-") {
            None => Ok(Output {
                file: None,
                writer: Box::new(std::io::stdout().lock()),
            }),
            Some(p) => {
                let mut partial = p.as_os_str().to_owned();
                partial.push(".part");
                let partial = PathBuf::from(partial);
                let f = std::fs::File::create(&partial)
                    .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
                Ok(Output {
                    file: Some((partial, p.to_path_buf())),
                    writer: Box::new(std::io::BufWriter::new(f)),
                })
            }
        }
    }

    pub fn write_all(&mut self, data: &[u8]) -> Result<(), CliError> {
        Ok(self.writer.write_all(data)?)
    }

    /// The file's name, when it is one.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|(_, p)| p.as_path())
    }

    /// Completes the output after `result`: flushed and renamed to its name when it is `Ok`,
    /// removed otherwise. Returns `result` (or the error completing it).
    pub fn finish<T>(mut self, result: Result<T, CliError>) -> Result<T, CliError> {
        let result = result.and_then(|v| {
            self.writer.flush()?;
            Ok(v)
        });
        drop(self.writer);
        if let Some((partial, name)) = &self.file {
            match &result {
                Ok(_) => std::fs::rename(partial, name)
                    .map_err(|e| format!("cannot write {}: {e}", name.display()))?,
                Err(_) => {
                    let _ = std::fs::remove_file(partial);
                }
            }
        }
        result
    }
}
