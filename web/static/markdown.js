// markdown.js: the agent's answers as Markdown (code blocks, lists,
// tables, links), rendered by marked and sanitised by DOMPurify, both
// vendored in vendor/ (scripts/vendor-web.sh says how). Raw HTML in the
// text is escaped by marked's renderer (shown as written). marked's HTML is
// never put into the page as it is: DOMPurify parses it into a detached
// fragment and keeps only the tags and attributes below, and the page gets
// that fragment. No images (the CSP would refuse other origins' anyway),
// no style attributes (nor would it run them), no event handlers, no
// scripts; links open in a new tab without a referrer or an opener.

import { Marked } from './vendor/marked.esm.js';
import DOMPurify from './vendor/purify.es.js';

const md = new Marked({ gfm: true, breaks: false, async: false });

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escape = (t) => String(t).replace(/[&<>"']/g, (c) => ESC[c]);

// HTML written in the text (block or inline) is shown as text, never
// parsed: a payload reaches no parser at all, not even DOMPurify's (whose
// parsing alone makes the browser report the CSP refusing its inline
// handlers and styles).
md.use({
  renderer: {
    html(token) {
      return escape(typeof token === 'string' ? token : token.text ?? token.raw ?? '');
    },
  },
});

const CONFIG = {
  ALLOWED_TAGS: ['p', 'br', 'hr', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'strong', 'em', 'del', 's', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li', 'table', 'thead', 'tbody', 'tr', 'th', 'td', 'a', 'span', 'kbd', 'sup', 'sub'],
  ALLOWED_ATTR: ['href', 'title', 'align', 'start', 'class', 'colspan', 'rowspan'],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#)/i,
  ALLOW_DATA_ATTR: false,
  RETURN_DOM_FRAGMENT: true,
};

let hooked = false;

/** supported: a DOM to sanitise with (not in Node's tests). */
function purifier() {
  if (!hooked && DOMPurify.isSupported) {
    DOMPurify.addHook('afterSanitizeAttributes', (node) => {
      if (node.nodeName === 'A' && node.getAttribute('href')) {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer nofollow');
      }
    });
    hooked = true;
  }
  return DOMPurify;
}

/**
 * renderMarkdown renders text as sanitised Markdown: a DocumentFragment
 * whose top level has no white-space-only text (so its textContent is the
 * text as written, less the Markdown).
 */
export function renderMarkdown(text) {
  const frag = purifier().sanitize(md.parse(String(text)), CONFIG);
  for (const n of [...frag.childNodes]) if (n.nodeType === 3 && !n.nodeValue.trim()) n.remove();
  return frag;
}
