// How the screen is divided, as a pure function of the terminal size.

/** Below this many columns the sidebar hides and the scrollback takes the whole width. */
export const SIDEBAR_MIN_COLUMNS = 60;
const SIDEBAR_MIN_WIDTH = 18;
const SIDEBAR_MAX_WIDTH = 28;

export interface Layout {
  readonly columns: number;
  readonly rows: number;
  /** 0 when the sidebar is hidden; includes its border column. */
  readonly sidebarWidth: number;
  readonly scrollbackWidth: number;
  /** Rows between the status line and the input line. */
  readonly bodyHeight: number;
}

export function computeLayout(columns: number, rows: number): Layout {
  const cols = Math.max(1, Math.floor(columns));
  const height = Math.max(1, Math.floor(rows));
  const sidebarWidth = cols < SIDEBAR_MIN_COLUMNS
    ? 0
    : Math.min(SIDEBAR_MAX_WIDTH, Math.max(SIDEBAR_MIN_WIDTH, Math.floor(cols * 0.22)));
  return {
    columns: cols,
    rows: height,
    sidebarWidth,
    // One column of gap between the scrollback text and the sidebar's border.
    scrollbackWidth: sidebarWidth === 0 ? cols : cols - sidebarWidth - 1,
    bodyHeight: Math.max(0, height - 2),
  };
}
