//! QR codes as PNG images: the work-phone binding's, for an admin's page to show (seed 003's
//! `qrCodeUrl`). `qrcodegen` makes the matrix and `png` encodes it; no image library.

use qrcodegen::{QrCode, QrCodeEcc};

/// Light modules around the code, as the QR standard asks.
pub(crate) const QUIET_ZONE: i32 = 4;
/// Pixels per module of the PNG.
pub(crate) const SCALE: u32 = 8;

/// Why a QR code could not be drawn.
#[derive(Debug, thiserror::Error)]
pub(crate) enum QrError {
    #[error("the text is too long for a QR code")]
    TooLong,
    #[error("PNG encoding: {0}")]
    Png(#[from] png::EncodingError),
}

/// `text` as a QR code (error correction M), drawn black on white with a [`QUIET_ZONE`], each
/// module [`SCALE`] pixels square: a 1-bit grayscale PNG.
pub(crate) fn qr_png(text: &str) -> Result<Vec<u8>, QrError> {
    let qr = QrCode::encode_text(text, QrCodeEcc::Medium).map_err(|_| QrError::TooLong)?;
    let modules = qr.size() + 2 * QUIET_ZONE;
    let side = modules as u32 * SCALE;
    // One bit a pixel, rows padded to whole bytes; 1 is white.
    let row_bytes = side.div_ceil(8) as usize;
    let mut pixels = Vec::with_capacity(row_bytes * side as usize);
    for py in 0..side {
        let y = (py / SCALE) as i32 - QUIET_ZONE;
        let mut row = vec![0u8; row_bytes];
        for px in 0..side {
            let x = (px / SCALE) as i32 - QUIET_ZONE;
            // Outside the code get_module answers light: the quiet zone.
            if !qr.get_module(x, y) {
                row[(px / 8) as usize] |= 0x80 >> (px % 8);
            }
        }
        pixels.extend_from_slice(&row);
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::One);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The PNG decoded by the `png` crate: (width, height, one byte a pixel, 0 black 255 white).
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::EXPAND);
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("size")];
        let info = reader.next_frame(&mut buf).expect("a frame");
        assert_eq!(info.color_type, png::ColorType::Grayscale);
        buf.truncate(info.line_size * info.height as usize);
        let pixels = buf
            .chunks(info.line_size)
            .flat_map(|row| row[..info.width as usize].to_vec())
            .collect();
        (info.width, info.height, pixels)
    }

    #[test]
    fn the_qr_png_is_a_square_black_on_white_code_with_its_quiet_zone() {
        let payload = r#"{"action":"bind_device","serverUrl":"ws://127.0.0.1:8053/api/v1/calls/device/ws","token":"bt_0123456789abcdef0123456789abcdef","userId":"user_001","timestamp":1703491200000}"#;
        let bytes = qr_png(payload).expect("drawn");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "the PNG signature");
        let qr = QrCode::encode_text(payload, QrCodeEcc::Medium).expect("encodes");
        let (w, h, pixels) = decode(&bytes);
        let side = (qr.size() as u32 + 8) * SCALE;
        assert_eq!((w, h), (side, side), "square, (modules + 8) * {SCALE} px");
        let px = |x: u32, y: u32| pixels[(y * w + x) as usize];
        assert!(
            pixels.iter().all(|&p| p == 0 || p == 255),
            "black and white"
        );
        // Every module's pixels, quiet zone included, are its colour.
        for my in 0..(side / SCALE) {
            for mx in 0..(side / SCALE) {
                let dark = qr.get_module(mx as i32 - QUIET_ZONE, my as i32 - QUIET_ZONE);
                let want = if dark { 0 } else { 255 };
                for (dx, dy) in [
                    (0, 0),
                    (SCALE - 1, 0),
                    (0, SCALE - 1),
                    (SCALE / 2, SCALE / 2),
                ] {
                    assert_eq!(
                        px(mx * SCALE + dx, my * SCALE + dy),
                        want,
                        "module {mx},{my}"
                    );
                }
            }
        }
        // The finder pattern's corner is black, the quiet zone before it white.
        assert_eq!(px(4 * SCALE, 4 * SCALE), 0);
        assert_eq!(px(4 * SCALE - 1, 4 * SCALE - 1), 255);
    }

    #[test]
    fn text_too_long_for_any_qr_code_is_an_error_not_a_panic() {
        assert!(matches!(qr_png(&"x".repeat(8000)), Err(QrError::TooLong)));
    }
}
