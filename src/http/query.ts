/**
 * The path and query parameters of a request URL, as `new URL(url)` gives them (`pathname`,
 * `searchParams`), without building a URL object per request: plain URLs (the ones every Pusher
 * SDK sends) are cut apart as strings, anything else goes through the URL parser.
 */

/** What the signature check reads: the pairs in order (duplicates kept), and the first by name. */
export interface QueryParams extends Iterable<[string, string]> {
  get(name: string): string | null;
  /** The query as sent, when every pair in it reads as written (nothing to decode). */
  readonly text?: string;
}

export interface RequestTarget {
  /** `new URL(url).pathname`. */
  path: string;
  /** `new URL(url).searchParams`, or pairs equal to them. */
  params: QueryParams;
}

/** Query pairs in order, as URLSearchParams iterates them. */
class Pairs implements QueryParams {
  constructor(readonly pairs: [string, string][]) {}

  get(name: string): string | null {
    for (const pair of this.pairs) {
      if (pair[0] === name) return pair[1];
    }
    return null;
  }

  [Symbol.iterator](): Iterator<[string, string]> {
    return this.pairs[Symbol.iterator]();
  }
}

/**
 * A query with nothing to decode (no "%" or "+"), the form every Pusher SDK sends: `get` reads
 * the text itself, and only iterating splits it. The signature check needs five names and, for
 * a query already in signing order, not the pairs at all (src/http/signature.ts).
 */
class PlainQuery implements QueryParams {
  constructor(readonly text: string) {}

  get(name: string): string | null {
    const { text } = this;
    if (name === "") return this.#firstWithEmptyName();
    // A match counts where a pair starts: at 0 or after "&" (a value holds no "&").
    for (let at = text.indexOf(name); at >= 0; at = text.indexOf(name, at + 1)) {
      if (at > 0 && text.charCodeAt(at - 1) !== AMPERSAND) continue;
      const after = at + name.length;
      const next = after === text.length ? AMPERSAND : text.charCodeAt(after);
      if (next === AMPERSAND) return "";
      if (next !== EQUALS) continue;
      const end = text.indexOf("&", after);
      return text.slice(after + 1, end < 0 ? text.length : end);
    }
    return null;
  }

  #firstWithEmptyName(): string | null {
    for (const [name, value] of this) if (name === "") return value;
    return null;
  }

  [Symbol.iterator](): Iterator<[string, string]> {
    return (parsePairs(this.text) ?? [])[Symbol.iterator]();
  }
}

const AMPERSAND = 0x26;
const EQUALS = 0x3d;

/**
 * Path characters the URL parser keeps as they are: unreserved, sub-delims, ":", "@", "%" and "/".
 * Dot segments ("/." or an encoded dot) and everything else (backslashes, spaces, non-ASCII...)
 * take the URL parser.
 */
const PLAIN_PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;
const DOT_SEGMENT = /\/\.|%2e/i;
/** Printable ASCII but space (trimmed at the end by the URL parser): it percent-encodes some of
 * these, which decoding undoes. */
const PLAIN_QUERY = /^[\x21-\x7e]*$/;

function viaUrlParser(url: string): RequestTarget {
  const parsed = new URL(url);
  return { path: parsed.pathname, params: parsed.searchParams };
}

/** A query component as URLSearchParams decodes it, or undefined when it must do it itself. */
function decodeComponent(text: string): string | undefined {
  const plus = text.includes("+") ? text.replaceAll("+", " ") : text;
  if (!plus.includes("%")) return plus;
  try {
    // Equal to URLSearchParams' decoding whenever it succeeds; it throws on a stray "%" or on
    // bytes that are not UTF-8, which URLSearchParams keeps or replaces with U+FFFD instead.
    return decodeURIComponent(plus);
  } catch {
    return undefined;
  }
}

/** Splits `query` (without "?" and "#") into decoded pairs, or undefined to defer to the parser. */
function parsePairs(query: string): [string, string][] | undefined {
  const pairs: [string, string][] = [];
  if (query === "") return pairs;
  for (const sequence of query.split("&")) {
    if (sequence === "") continue;
    const eq = sequence.indexOf("=");
    const name = decodeComponent(eq < 0 ? sequence : sequence.slice(0, eq));
    const value = eq < 0 ? "" : decodeComponent(sequence.slice(eq + 1));
    if (name === undefined || value === undefined) return undefined;
    pairs.push([name, value]);
  }
  return pairs;
}

/** The pathname and search params of an absolute request URL (`request.url`). */
export function requestTarget(url: string): RequestTarget {
  const scheme = url.indexOf("://");
  const start = scheme < 0 ? -1 : url.indexOf("/", scheme + 3);
  // No path, or a "?" / "#" before the first "/" (then that "/" is not where the path starts).
  if (start < 0 || url.lastIndexOf("?", start) > scheme || url.lastIndexOf("#", start) > scheme) {
    return viaUrlParser(url);
  }
  const hash = url.indexOf("#", start);
  const end = hash < 0 ? url.length : hash;
  const mark = url.indexOf("?", start);
  const pathEnd = mark < 0 || mark > end ? end : mark;
  const path = url.slice(start, pathEnd);
  if (!PLAIN_PATH.test(path) || DOT_SEGMENT.test(path)) return viaUrlParser(url);
  const query = pathEnd === end ? "" : url.slice(pathEnd + 1, end);
  if (!PLAIN_QUERY.test(query)) return viaUrlParser(url);
  if (!query.includes("%") && !query.includes("+")) return { path, params: new PlainQuery(query) };
  const pairs = parsePairs(query);
  return pairs ? { path, params: new Pairs(pairs) } : viaUrlParser(url);
}
