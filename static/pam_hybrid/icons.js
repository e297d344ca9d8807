// Line icons drawn from one SVG path, as the page's icon buttons show them.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

/** A 16 px icon of one stroked path (`d` in a 24 x 24 box), hidden from assistive technology. */
export function lineIcon(d) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "16");
  svg.setAttribute("height", "16");
  svg.setAttribute("aria-hidden", "true");
  const line = document.createElementNS(SVG, "path");
  line.setAttribute("d", d);
  svg.append(line);
  return svg;
}
