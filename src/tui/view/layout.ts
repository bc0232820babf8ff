// How the screen is divided, as a pure function of the terminal size, the height of the input
// box and the user's sidebar choice. From the top: the status line (connection, conversation
// bar), the conversation's header, the scrollback beside the users sidebar, the input box.

/** Below this many columns the sidebar hides by itself (Alt-U can still show it). */
export const SIDEBAR_MIN_COLUMNS = 60;
/** Below this many columns there is no room for the sidebar at all. */
const SIDEBAR_FORCED_MIN_COLUMNS = 40;
const SIDEBAR_MIN_WIDTH = 18;
const SIDEBAR_MAX_WIDTH = 28;
/** Below this many rows the header row goes, to leave room for messages. */
const HEADER_MIN_ROWS = 8;

export interface Layout {
  readonly columns: number;
  readonly rows: number;
  /** 0 when the sidebar is hidden; includes its border column. */
  readonly sidebarWidth: number;
  readonly scrollbackWidth: number;
  /** 1 when the conversation header shows. */
  readonly headerHeight: number;
  /** Rows between the header and the input box. */
  readonly bodyHeight: number;
  readonly inputHeight: number;
}

export interface LayoutOptions {
  /** Rows the input box needs (already capped by maxInputRows). */
  readonly inputRows?: number;
  /** The user's choice (Alt-U); undefined: shown when the terminal is wide enough. */
  readonly sidebar?: boolean | undefined;
}

/** Whether the sidebar shows at this width, given the user's choice. */
export function sidebarShown(columns: number, choice: boolean | undefined): boolean {
  return (choice ?? columns >= SIDEBAR_MIN_COLUMNS) && columns >= SIDEBAR_FORCED_MIN_COLUMNS;
}

export function computeLayout(columns: number, rows: number, options: LayoutOptions = {}): Layout {
  const cols = Math.max(1, Math.floor(columns));
  const height = Math.max(1, Math.floor(rows));
  const sidebarWidth = sidebarShown(cols, options.sidebar)
    ? Math.min(SIDEBAR_MAX_WIDTH, Math.max(SIDEBAR_MIN_WIDTH, Math.floor(cols * 0.22)))
    : 0;
  const headerHeight = height >= HEADER_MIN_ROWS ? 1 : 0;
  const inputHeight = Math.max(1, Math.min(options.inputRows ?? 1, height - 1 - headerHeight - 1));
  return {
    columns: cols,
    rows: height,
    sidebarWidth,
    // One column of gap between the scrollback text and the sidebar's border.
    scrollbackWidth: sidebarWidth === 0 ? cols : cols - sidebarWidth - 1,
    headerHeight,
    bodyHeight: Math.max(0, height - 1 - headerHeight - inputHeight),
    inputHeight,
  };
}
