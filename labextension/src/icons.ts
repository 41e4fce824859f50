import { LabIcon } from '@jupyterlab/ui-components';

// Strokes only, coloured through Lab's `jp-icon3` class so the icon follows the theme.
const yardlabSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g fill="none">
    <g class="jp-icon3" stroke="currentColor" stroke-width="2" stroke-linecap="round">
      <circle cx="12" cy="12" r="9"/>
      <path d="M4.5 8c4.5 0 9.5 2.5 12.5 8"/>
      <path d="M3.5 13c4.5-.5 9.5 2 11.5 7"/>
      <path d="M9 3.5c4 2.5 7.5 7 8.5 13"/>
    </g>
  </g>
</svg>`;

/**
 * The yardlab sidebar icon: a ball of yarn.
 */
export const yardlabIcon = new LabIcon({
  name: 'yardlab:sidebar',
  svgstr: yardlabSvg
});

// A folder in front of a storage cylinder, in the same stroke style.
const hdfsSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g fill="none">
    <g class="jp-icon3" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
      <ellipse cx="10" cy="5" rx="7" ry="2.5"/>
      <path d="M3 5v10c0 1.4 3.1 2.5 7 2.5"/>
      <path d="M17 5v4"/>
      <path d="M3 10c0 1.4 3.1 2.5 7 2.5"/>
      <path d="M12 13h3.5l1.5 1.5h5v6.5h-10z"/>
    </g>
  </g>
</svg>`;

/**
 * The HDFS file browser icon: storage with a folder.
 */
export const hdfsIcon = new LabIcon({
  name: 'yardlab:hdfs',
  svgstr: hdfsSvg
});
