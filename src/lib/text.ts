// Input hygiene shared by every place that takes text from outside.

/** C0 controls (NUL included) and DEL: never valid in names, emails, URLs or ids. */
export function hasControlCharacters(value: string): boolean {
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}
