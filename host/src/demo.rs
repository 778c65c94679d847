//! The bundled example API.
