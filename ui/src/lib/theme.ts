// Light/dark/system theme: the resolved theme goes on <html data-theme>.
export type Theme = 'light' | 'dark' | 'system';

export function resolveTheme(theme: Theme, prefersDark: boolean): 'light' | 'dark' {
  return theme === 'system' ? (prefersDark ? 'dark' : 'light') : theme;
}

export function applyTheme(theme: Theme, root: HTMLElement = document.documentElement): void {
  const dark = typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches;
  root.dataset.theme = resolveTheme(theme, dark);
}
