//! Pixels: drawings rasterized ([`render`]: resvg, then JPEG or PNG; [`render_rgba`] for
//! composing) and the shop's own
//! pictures checked ([`check`]), shrunk to thumbnails and re-encoded ([`convert`]) or fitted
//! into a square ([`fitted_rgba`]).

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::imageops::FilterType;
use image::{DynamicImage, ExtendedColorType, ImageEncoder, ImageReader, Limits, RgbImage};
use std::io::Cursor;

/// JPEG quality of rendered drawings and thumbnails.
const JPEG_QUALITY: u8 = 85;

/// The largest picture decoded (either side), and the most memory a decoder may take: a guest
/// has 128 MB.
const MAX_SIDE: u32 = 8192;
const MAX_DECODE_BYTES: u64 = 64 << 20;

/// Raster encodings served.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lossy, small: the default for drawings (their fabric grain does not compress losslessly).
    Jpeg,
    /// Lossless, with alpha.
    Png,
}

impl Encoding {
    /// The `content-type` of pictures in this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Jpeg => "image/jpeg",
            Encoding::Png => "image/png",
        }
    }
}

/// The SVG `svg` rasterized at `size`×`size` pixels (its own width and height are ignored) on
/// an opaque background, encoded.
pub fn render(svg: &str, size: u32, encoding: Encoding) -> Result<Vec<u8>, String> {
    // Drawings have an opaque background: straight RGB is the premultiplied RGB.
    let rgb = rasterize(svg, size)?
        .pixels()
        .iter()
        .flat_map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue()]
        })
        .collect();
    encode_rgb(rgb, size, size, encoding)
}

/// The SVG `svg` rasterized at `size`×`size` pixels as straight RGBA bytes.
pub fn render_rgba(svg: &str, size: u32) -> Result<Vec<u8>, String> {
    Ok(rasterize(svg, size)?
        .pixels()
        .iter()
        .flat_map(|p| {
            let c = p.demultiply();
            [c.red(), c.green(), c.blue(), c.alpha()]
        })
        .collect())
}

fn rasterize(svg: &str, size: u32) -> Result<resvg::tiny_skia::Pixmap, String> {
    let tree = resvg::usvg::Tree::from_str(svg, &resvg::usvg::Options::default())
        .map_err(|e| format!("drawing: {e}"))?;
    let mut pixmap =
        resvg::tiny_skia::Pixmap::new(size, size).ok_or("drawing: empty picture size")?;
    let scale = size as f32 / tree.size().width().max(tree.size().height());
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    Ok(pixmap)
}

/// The picture `bytes` fitted into a `side`×`side` square (shrunk or enlarged, proportions
/// kept, centred on transparency), as straight RGBA bytes.
pub fn fitted_rgba(bytes: &[u8], side: u32) -> Result<Vec<u8>, String> {
    let picture = decode(bytes)?;
    let scale = side as f32 / picture.width().max(picture.height()) as f32;
    let (w, h) = (
        ((picture.width() as f32 * scale).round() as u32).clamp(1, side),
        ((picture.height() as f32 * scale).round() as u32).clamp(1, side),
    );
    let fitted = picture
        .resize_exact(w, h, FilterType::CatmullRom)
        .to_rgba8();
    let mut square = image::RgbaImage::new(side, side);
    image::imageops::overlay(
        &mut square,
        &fitted,
        i64::from((side - w) / 2),
        i64::from((side - h) / 2),
    );
    Ok(square.into_raw())
}

/// Encodes `width`×`height` RGB bytes.
pub fn encode_rgb(
    rgb: Vec<u8>,
    width: u32,
    height: u32,
    encoding: Encoding,
) -> Result<Vec<u8>, String> {
    let picture =
        RgbImage::from_raw(width, height, rgb).ok_or("encoding: not width×height×3 bytes")?;
    encode(&DynamicImage::ImageRgb8(picture), encoding)
}

/// Checks that `bytes` decode as a picture of at most [`MAX_SIDE`] pixels a side.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    decode(bytes).map(drop)
}

/// The picture `bytes` shrunk to `width` pixels wide if it is wider (height in proportion),
/// in `encoding`.
pub fn convert(bytes: &[u8], width: Option<u32>, encoding: Encoding) -> Result<Vec<u8>, String> {
    let mut picture = decode(bytes)?;
    if let Some(width) = width.filter(|&w| w < picture.width()) {
        let height = (u64::from(picture.height()) * u64::from(width))
            .div_ceil(u64::from(picture.width()))
            .max(1) as u32;
        picture = picture.resize_exact(width, height, FilterType::CatmullRom);
    }
    encode(&picture, encoding)
}

fn decode(bytes: &[u8]) -> Result<DynamicImage, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader.decode().map_err(|e| e.to_string())
}

fn encode(picture: &DynamicImage, encoding: Encoding) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let result = match encoding {
        Encoding::Jpeg => {
            let rgb = picture.to_rgb8();
            JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY).write_image(
                &rgb,
                rgb.width(),
                rgb.height(),
                ExtendedColorType::Rgb8,
            )
        }
        Encoding::Png => {
            let rgba = picture.to_rgba8();
            PngEncoder::new(&mut out).write_image(
                &rgba,
                rgba.width(),
                rgba.height(),
                ExtendedColorType::Rgba8,
            )
        }
    };
    result.map_err(|e| format!("encoding: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square_svg(colour: &str) -> String {
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 400 400\">\
             <rect width=\"400\" height=\"400\" fill=\"#fff\"/>\
             <rect x=\"100\" y=\"100\" width=\"200\" height=\"200\" fill=\"{colour}\"/></svg>"
        )
    }

    #[test]
    fn drawings_rasterize_at_the_asked_size_in_their_colours() {
        let jpeg = render(&square_svg("#c0392b"), 64, Encoding::Jpeg).unwrap();
        let picture = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!(picture.dimensions(), (64, 64));
        let centre = picture.get_pixel(32, 32).0;
        assert!(
            centre
                .iter()
                .zip([0xc0, 0x39, 0x2b])
                .all(|(a, b)| a.abs_diff(b) <= 6),
            "{centre:?}"
        );
        assert!(picture.get_pixel(2, 2).0.iter().all(|&c| c >= 245));
        let png = render(&square_svg("#2f5fa7"), 100, Encoding::Png).unwrap();
        let picture = image::load_from_memory(&png).unwrap().to_rgb8();
        assert_eq!(picture.get_pixel(50, 50).0, [0x2f, 0x5f, 0xa7], "lossless");
        assert!(render("<svg", 64, Encoding::Png).is_err());
    }

    #[test]
    fn thumbnails_keep_proportions_and_transparency_and_never_enlarge() {
        let wide =
            DynamicImage::ImageRgb8(RgbImage::from_pixel(300, 100, image::Rgb([9, 99, 199])));
        let jpeg = encode(&wide, Encoding::Jpeg).unwrap();
        let small = convert(&jpeg, Some(150), Encoding::Jpeg).unwrap();
        assert_eq!(
            image::load_from_memory(&small)
                .unwrap()
                .to_rgb8()
                .dimensions(),
            (150, 50)
        );
        let png = convert(&jpeg, Some(400), Encoding::Png).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        assert_eq!(
            image::load_from_memory(&png).unwrap().width(),
            300,
            "not enlarged"
        );
        let clear = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            40,
            40,
            image::Rgba([1, 2, 3, 0]),
        ));
        let png = encode(&clear, Encoding::Png).unwrap();
        let small = convert(&png, Some(16), Encoding::Png).unwrap();
        assert_eq!(
            image::load_from_memory(&small)
                .unwrap()
                .to_rgba8()
                .get_pixel(8, 8)
                .0[3],
            0
        );
    }

    #[test]
    fn pieces_are_fitted_into_a_transparent_square() {
        let tall = DynamicImage::ImageRgb8(RgbImage::from_pixel(50, 100, image::Rgb([250, 0, 0])));
        let rgba = fitted_rgba(&encode(&tall, Encoding::Png).unwrap(), 64).unwrap();
        assert_eq!(rgba.len(), 64 * 64 * 4);
        let at = |x: usize, y: usize| &rgba[(y * 64 + x) * 4..][..4];
        assert_eq!(at(32, 32), [250, 0, 0, 255]);
        assert_eq!(at(2, 32)[3], 0, "left of a tall picture is transparent");
        let cut = render_rgba(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\">\
             <rect x=\"5\" width=\"5\" height=\"10\" fill=\"#0f0\"/></svg>",
            20,
        )
        .unwrap();
        assert_eq!(
            (&cut[..4], &cut[(5 * 20 + 15) * 4..][..4]),
            (&[0, 0, 0, 0][..], &[0, 255, 0, 255][..])
        );
    }

    #[test]
    fn broken_and_oversized_pictures_are_refused() {
        let jpeg = encode(
            &DynamicImage::ImageRgb8(RgbImage::new(64, 64)),
            Encoding::Jpeg,
        )
        .unwrap();
        assert!(check(&jpeg).is_ok());
        assert!(check(&jpeg[..jpeg.len() / 2]).is_err(), "truncated");
        assert!(check(b"\x89PNG\r\n\x1a\nnot really").is_err());
        // Wider than any picture decoded (a few bytes of PNG: it is all one colour).
        let wide = DynamicImage::ImageRgb8(RgbImage::new(MAX_SIDE + 1, 1));
        let refused = check(&encode(&wide, Encoding::Png).unwrap()).unwrap_err();
        assert!(refused.contains("limit"), "{refused}");
    }
}
