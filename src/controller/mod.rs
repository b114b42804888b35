//! The VpnPbrRoute controller.
