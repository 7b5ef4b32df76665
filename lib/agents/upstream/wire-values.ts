import type { FilePart, ImagePart, TextPart } from '../../transcript.js'

// Small conversions both upstream APIs share.

/** Text, or media with data or a link: an image or file with neither is not sent. */
export function hasSource (part: TextPart | ImagePart | FilePart): boolean {
  return part.type === 'text' || part.data !== undefined || part.url !== undefined
}

/** Inline data as a `data:` URL (clients send base64 or a whole data URL); a link as it is. */
export function dataUrl (part: ImagePart | FilePart): string {
  if (part.data === undefined) return part.url as string
  if (part.data.startsWith('data:')) return part.data
  return `data:${part.mimeType ?? (part.type === 'image' ? 'image/png' : 'application/octet-stream')};base64,${part.data}`
}

/** A token count from an upstream, or 0 when it sent none (or nonsense). */
export function count (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : 0
}
